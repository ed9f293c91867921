"""The soak's report: one row per interval, and a verdict from the second half of the run. Pure
functions of what bench.soak measured, so that they are tested without running a soak."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

# Past these rates, extrapolated from the second half of the run, the verdict fails. A leak of one
# kilobyte or one descriptor per task would pass them many times over at the soak's load.
MEMORY_GROWTH_LIMIT_MB_PER_HOUR = 50.0
DESCRIPTOR_GROWTH_LIMIT_PER_HOUR = 100.0
FINAL = ("completed", "failed", "cancelled")


@dataclass(frozen=True)
class Sample:
    """The service's processes at one instant of the run."""

    at: float  # seconds since the load started
    api_mb: float
    worker_mb: float  # the worker processes
    simulation_mb: float  # their simulation children
    api_fds: int
    worker_fds: int
    database_mb: float

    @property
    def memory_mb(self) -> float:
        return self.api_mb + self.worker_mb + self.simulation_mb

    @property
    def fds(self) -> int:
        return self.api_fds + self.worker_fds


@dataclass(frozen=True)
class Finished:
    """One task as the load generator saw it end."""

    at: float  # seconds since the load started, when its final state was read
    latency: float  # seconds from the submission to that read
    status: str
    kind: str = "bell"  # what the load generator sent: bell, failing, cancel or heavy


@dataclass
class Audit:
    """What the database and the API said about every task once the load had drained."""

    submitted: int  # tasks the load generator got a 202 for
    final_by_client: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)  # one line per problem found


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile of values (p in 0..100)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares slope and intercept of ys against xs; a flat line through one point or none."""
    if len(xs) < 2 or max(xs) == min(xs):
        return 0.0, ys[0] if ys else 0.0
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
    return slope, mean_y - slope * mean_x


def slope_error(xs: list[float], ys: list[float], slope: float, intercept: float) -> float:
    """The standard error of a fitted slope: how far noise alone could have moved it; 0 below three points."""
    if len(xs) < 3 or max(xs) == min(xs):
        return 0.0
    mean_x = sum(xs) / len(xs)
    residuals = sum((y - (slope * x + intercept)) ** 2 for x, y in zip(xs, ys, strict=True))
    return math.sqrt(residuals / (len(xs) - 2) / sum((x - mean_x) ** 2 for x in xs))


def interval_seconds(total_seconds: float) -> float:
    """A row per minute; a run shorter than ten minutes gets ten rows."""
    return 60.0 if total_seconds >= 600 else total_seconds / 10


def table(finished: list[Finished], samples: list[Sample], total_seconds: float) -> list[str]:
    """The report's rows as a Markdown table: per interval, what finished in it and the last sample taken in it."""
    step = interval_seconds(total_seconds)
    lines = [
        "| until | tasks/s | p50 ms | p99 ms | API MB | workers MB | simulations MB | API fds | worker fds "
        "| database MB |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = max(1, round(total_seconds / step))
    for index in range(rows):
        start, end = index * step, (index + 1) * step
        done = [f for f in finished if start <= f.at < end or (index == rows - 1 and f.at >= end)]
        latencies = [f.latency * 1000 for f in done if f.status == "completed"]
        inside = [s for s in samples if s.at < end]
        last = inside[-1] if inside else None
        p50 = f"{percentile(latencies, 50):.1f}" if latencies else "-"
        p99 = f"{percentile(latencies, 99):.1f}" if latencies else "-"
        processes = (
            f"{last.api_mb:.0f} | {last.worker_mb:.0f} | {last.simulation_mb:.0f} | {last.api_fds} | "
            f"{last.worker_fds} | {last.database_mb:.1f}"
            if last
            else "- | - | - | - | - | -"
        )
        lines.append(f"| {_clock(end)} | {len(done) / step:.1f} | {p50} | {p99} | {processes} |")
    return lines


def latency_by_kind(finished: list[Finished]) -> str:
    """One line: p50 and p99 from submission to the final state read, for each kind of task."""
    kinds = sorted({f.kind for f in finished})
    parts = []
    for kind in kinds:
        ms = [f.latency * 1000 for f in finished if f.kind == kind]
        parts.append(f"{kind} p50 {percentile(ms, 50):.1f} ms, p99 {percentile(ms, 99):.1f} ms ({len(ms):,})")
    return "latency by kind, whole run: " + "; ".join(parts)


@dataclass(frozen=True)
class Growth:
    """A fitted trend per hour and its uncertainty."""

    per_hour: float
    error_per_hour: float  # the slope's standard error

    def beyond(self, limit: float) -> bool:
        """Above the limit even at the low end of its two-standard-error range."""
        return self.per_hour - 2 * self.error_per_hour > limit

    def __str__(self) -> str:
        return f"{self.per_hour:+.1f} ± {2 * self.error_per_hour:.1f}"


def growth(samples: list[Sample], total_seconds: float, value: Callable[[Sample], float]) -> Growth:
    """The trend of value(sample) over the second half of the run, per hour."""
    late = [s for s in samples if s.at >= total_seconds / 2]
    times, values = [s.at for s in late], [value(s) for s in late]
    slope, intercept = linear_fit(times, values)
    return Growth(slope * 3600, slope_error(times, values, slope, intercept) * 3600)


def verdict(samples: list[Sample], total_seconds: float, audit: Audit) -> str:
    """One line: PASS or FAIL, the growth rates, and how every task ended.

    Memory is judged on the API and the worker processes, which live as long as the service: the
    simulation processes are replaced after every cancelled running task (hundreds of times in a
    soak), so a trend in them says nothing, and their size is capped by WORKER_MAX_MEMORY_MB. It is
    shown all the same. A growth fails the verdict only when it is beyond its limit at the low end of
    its two-standard-error range: a 10-minute run cannot tell a few MB an hour from noise.
    """
    service = growth(samples, total_seconds, lambda s: s.api_mb + s.worker_mb)
    everything = growth(samples, total_seconds, lambda s: s.memory_mb)
    descriptors = growth(samples, total_seconds, lambda s: float(s.fds))
    problems = list(audit.unexpected)
    if service.beyond(MEMORY_GROWTH_LIMIT_MB_PER_HOUR):
        problems.append(f"memory grows {service} MB/h (limit {MEMORY_GROWTH_LIMIT_MB_PER_HOUR:g})")
    if descriptors.beyond(DESCRIPTOR_GROWTH_LIMIT_PER_HOUR):
        problems.append(f"descriptors grow {descriptors}/h (limit {DESCRIPTOR_GROWTH_LIMIT_PER_HOUR:g})")
    ends = ", ".join(f"{state} {audit.final_by_client[state]:,}" for state in FINAL)
    outcome = (
        f"{audit.submitted:,} tasks submitted, each reached a final state exactly once ({ends}), none stuck"
        if not audit.unexpected
        else f"{audit.submitted:,} tasks submitted ({ends})"
    )
    head = "PASS" if not problems else "FAIL"
    line = (
        f"verdict: {head}: memory of the API and workers {service} MB/h (with the simulation processes "
        f"{everything} MB/h), descriptors {descriptors}/h, fitted over the second half; {outcome}"
    )
    return line + "".join(f"; {problem}" for problem in problems)


def _clock(seconds: float) -> str:
    whole = int(round(seconds))
    return f"{whole // 60}:{whole % 60:02d}"
