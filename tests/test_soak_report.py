"""The soak's report and verdict (bench/soak_report.py), on made-up measurements: no soak runs here."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import pytest

from bench.soak_report import (
    Audit,
    Finished,
    Growth,
    Sample,
    growth,
    latency_by_kind,
    linear_fit,
    slope_error,
    table,
    verdict,
)

pytestmark = pytest.mark.database_independent


def samples(
    service: Sequence[float], simulations: Sequence[float] | None = None, fds: Sequence[int] | None = None
) -> list[Sample]:
    """One sample every 2 s: the API and the workers holding `service` MB between them, the simulation
    processes `simulations` MB (300 unless given), and `fds` descriptors (50 unless given)."""
    simulations = simulations or [300.0] * len(service)
    fds = fds or [50] * len(service)
    return [
        Sample(at=i * 2.0, api_mb=m / 2, worker_mb=m / 2, simulation_mb=sim, api_fds=f, worker_fds=0, database_mb=1.0)
        for i, (m, sim, f) in enumerate(zip(service, simulations, fds, strict=True))
    ]


def test_linear_fit_finds_the_line_and_is_flat_with_too_few_points() -> None:
    slope, intercept = linear_fit([0, 1, 2, 3], [1, 3, 5, 7])
    assert slope == pytest.approx(2) and intercept == pytest.approx(1)
    assert slope_error([0, 1, 2, 3], [1, 3, 5, 7], slope, intercept) == pytest.approx(0)
    assert linear_fit([5], [9]) == (0.0, 9)
    assert linear_fit([], []) == (0.0, 0.0)


def test_the_slopes_error_grows_with_the_noise() -> None:
    xs = [float(x) for x in range(100)]
    quiet = [float(x % 2) for x in range(100)]
    noisy = [10.0 * (x % 2) for x in range(100)]
    assert 0 < slope_error(xs, quiet, *linear_fit(xs, quiet)) < slope_error(xs, noisy, *linear_fit(xs, noisy))


def test_growth_is_fitted_over_the_second_half_only() -> None:
    warm_up = [100 + min(i, 50) * 2 for i in range(100)]  # 100 MB gained in the first half, then flat
    assert growth(samples(warm_up), 200, lambda s: s.memory_mb) == Growth(0, 0)
    ramp = [300 + max(0, i - 50) * 0.2 for i in range(100)]  # 1 MB every 10 s in the second half
    assert growth(samples(ramp), 200, lambda s: s.memory_mb).per_hour == pytest.approx(360)


def test_verdict_passes_a_flat_run_where_every_task_ended_once() -> None:
    audit = Audit(submitted=1200, final_by_client=Counter(completed=1000, failed=150, cancelled=50))
    line = verdict(samples([150.0] * 100), 200, audit)
    assert line == (
        "verdict: PASS: memory of the API and workers +0.0 ± 0.0 MB/h (with the simulation processes "
        "+0.0 ± 0.0 MB/h), descriptors +0.0 ± 0.0/h, fitted over the second half; "
        "1,200 tasks submitted, each reached a final state exactly once "
        "(completed 1,000, failed 150, cancelled 50), none stuck"
    )


def test_simulation_processes_coming_and_going_do_not_fail_the_verdict() -> None:
    # Replaced after each cancelled running task: 250 to 320 MB at random, even rising by chance.
    simulations = [250 + (i * 37 % 71) + i * 0.3 for i in range(150)]
    line = verdict(samples([150.0] * 150, simulations), 300, Audit(submitted=0))
    assert line.startswith("verdict: PASS: memory of the API and workers +0.0 ± 0.0 MB/h (with the simulation")


def test_verdict_fails_on_growth_beyond_its_noise_or_on_any_task_problem() -> None:
    audit = Audit(submitted=10, final_by_client=Counter(completed=9), unexpected=["1 bell tasks not final after 300 s"])
    leaking = [150 + i * 0.2 + (i % 3) for i in range(100)]  # 0.1 MB/s: 360 MB an hour, and some noise
    line = verdict(samples(leaking), 200, audit)
    assert re.match(r"verdict: FAIL: memory of the API and workers \+3[56]\d\.\d ± \d+\.\d MB/h ", line), line
    assert "10 tasks submitted (completed 9, failed 0, cancelled 0)" in line
    assert re.search(
        r"; 1 bell tasks not final after 300 s; memory grows \+3[56]\d\.\d ± [\d.]+ MB/h \(limit 50\)$", line
    )
    descriptors = [40 + i // 2 for i in range(100)]  # one more every 4 s: 900 an hour
    line = verdict(samples([150.0] * 100, fds=descriptors), 200, Audit(submitted=0))
    assert line.startswith("verdict: FAIL: ") and line.endswith("/h (limit 100)")
    assert re.search(r"descriptors grow \+(89\d|90\d)\.\d ± ", line), line


def test_table_has_a_row_per_tenth_of_a_short_run() -> None:
    finished = [Finished(at=t / 10, latency=0.015 if t % 3 == 0 else 0.005, status="completed") for t in range(600)]
    finished.append(Finished(at=59.9, latency=9.0, status="failed"))  # only completed tasks count for latency
    rows = table(finished, samples([60.0] * 30, [240.0] * 30), total_seconds=60)
    assert rows[0].startswith("| until | tasks/s | p50 ms | p99 ms |")
    assert len(rows) == 2 + 10
    assert rows[2] == "| 0:06 | 10.0 | 5.0 | 15.0 | 30 | 30 | 240 | 50 | 0 | 1.0 |"
    assert rows[-1].startswith("| 1:00 | 10.2 | ")


def test_latency_by_kind_names_each_kind_once() -> None:
    finished = [Finished(at=1, latency=0.004, status="completed", kind="bell")] * 99
    finished += [Finished(at=1, latency=0.1, status="completed", kind="bell")]
    finished += [Finished(at=2, latency=1.5, status="completed", kind="heavy")]
    assert latency_by_kind(finished) == (
        "latency by kind, whole run: bell p50 4.0 ms, p99 4.0 ms (100); heavy p50 1500.0 ms, p99 1500.0 ms (1)"
    )
