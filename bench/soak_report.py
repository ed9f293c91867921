"""The soak's report: one row per interval, and a verdict from the second half of the run. Pure
functions of what bench.soak measured, so that they are tested without running a soak."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

# Past these rates, extrapolated from the second half of the run, the verdict says "growing".
# A leak of one kilobyte or one descriptor per task would pass them many times over at the soak's load.
MEMORY_GROWTH_LIMIT_MB_PER_HOUR = 50.0
DESCRIPTOR_GROWTH_LIMIT_PER_HOUR = 100.0
FINAL = ("completed", "failed", "cancelled")
# The growth fit takes the lowest of each run of this many consecutive samples.
WINDOW_SAMPLES = 5


@dataclass(frozen=True)
class Sample:
    """The service's processes at one instant of the run."""

    at: float  # seconds since the load started
    api_mb: float
    workers_mb: float  # the worker processes and their simulation children
    api_fds: int
    worker_fds: int
    database_mb: float

    @property
    def memory_mb(self) -> float:
        return self.api_mb + self.workers_mb

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


def interval_seconds(total_seconds: float) -> float:
    """A row per minute; a run shorter than ten minutes gets ten rows."""
    return 60.0 if total_seconds >= 600 else total_seconds / 10


def table(finished: list[Finished], samples: list[Sample], total_seconds: float) -> list[str]:
    """The report's rows as a Markdown table: per interval, what finished in it and the last sample taken in it."""
    step = interval_seconds(total_seconds)
    lines = [
        "| until | tasks/s | p50 ms | p99 ms | API MB | workers MB | API fds | worker fds | database MB |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
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
            f"{last.api_mb:.0f} | {last.workers_mb:.0f} | {last.api_fds} | {last.worker_fds} | {last.database_mb:.1f}"
            if last
            else "- | - | - | - | -"
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


def growth_per_hour(samples: list[Sample], total_seconds: float) -> tuple[float, float]:
    """Memory (MB/h) and descriptors (per hour): the slope of a linear fit over the second half of
    the run, through the lowest sample of each window of WINDOW_SAMPLES. A heavy circuit's
    statevector or a burst of connections lifts a sample or two and is gone again; what a leak
    lifts stays, so the lows carry the trend without the noise."""
    late = [s for s in samples if s.at >= total_seconds / 2]
    windows = [late[i : i + WINDOW_SAMPLES] for i in range(0, len(late), WINDOW_SAMPLES)]
    lows = [min(window, key=lambda s: s.memory_mb) for window in windows]
    memory, _ = linear_fit([s.at for s in lows], [s.memory_mb for s in lows])
    fewest = [min(window, key=lambda s: s.fds) for window in windows]
    descriptors, _ = linear_fit([s.at for s in fewest], [float(s.fds) for s in fewest])
    return memory * 3600, descriptors * 3600


def verdict(samples: list[Sample], total_seconds: float, audit: Audit) -> str:
    """One line: PASS or FAIL, the growth rates, and how every task ended."""
    memory, descriptors = growth_per_hour(samples, total_seconds)
    problems = list(audit.unexpected)
    if memory > MEMORY_GROWTH_LIMIT_MB_PER_HOUR:
        problems.append(f"memory grows {memory:+.1f} MB/h (limit {MEMORY_GROWTH_LIMIT_MB_PER_HOUR:g})")
    if descriptors > DESCRIPTOR_GROWTH_LIMIT_PER_HOUR:
        problems.append(f"descriptors grow {descriptors:+.1f}/h (limit {DESCRIPTOR_GROWTH_LIMIT_PER_HOUR:g})")
    ends = ", ".join(f"{state} {audit.final_by_client[state]:,}" for state in FINAL)
    outcome = (
        f"{audit.submitted:,} tasks submitted, each reached a final state exactly once ({ends}), none stuck"
        if not audit.unexpected
        else f"{audit.submitted:,} tasks submitted ({ends})"
    )
    head = "PASS" if not problems else "FAIL"
    line = (
        f"verdict: {head}: memory {memory:+.1f} MB/h, descriptors {descriptors:+.1f}/h "
        f"(linear fit over the second half); {outcome}"
    )
    return line + "".join(f"; {problem}" for problem in problems)


def _clock(seconds: float) -> str:
    whole = int(round(seconds))
    return f"{whole // 60}:{whole % 60:02d}"
