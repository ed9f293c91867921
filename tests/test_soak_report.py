"""The soak's report and verdict (bench/soak_report.py), on made-up measurements: no soak runs here."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pytest

from bench.soak_report import Audit, Finished, Sample, growth_per_hour, latency_by_kind, linear_fit, table, verdict

pytestmark = pytest.mark.database_independent


def samples(memory: Sequence[float], fds: Sequence[int] | None = None, every: float = 2.0) -> list[Sample]:
    """One sample every `every` seconds, the API holding a tenth of the memory and the descriptors given."""
    fds = fds or [50] * len(memory)
    return [
        Sample(at=i * every, api_mb=m / 10, workers_mb=m * 9 / 10, api_fds=f, worker_fds=0, database_mb=1.0)
        for i, (m, f) in enumerate(zip(memory, fds, strict=True))
    ]


def test_linear_fit_finds_the_line_and_is_flat_with_too_few_points() -> None:
    slope, intercept = linear_fit([0, 1, 2, 3], [1, 3, 5, 7])
    assert slope == pytest.approx(2) and intercept == pytest.approx(1)
    assert linear_fit([5], [9]) == (0.0, 9)
    assert linear_fit([], []) == (0.0, 0.0)


def test_growth_is_fitted_over_the_second_half_only() -> None:
    # Warm-up: 100 MB gained in the first half, then flat: no growth.
    memory = [100 + min(i, 50) * 2 for i in range(100)]
    assert growth_per_hour(samples(memory), total_seconds=200) == pytest.approx((0, 0))
    # 1 MB every 10 s in the second half is 360 MB an hour.
    ramp = [300 + max(0, i - 50) * 0.2 for i in range(100)]
    assert growth_per_hour(samples(ramp), total_seconds=200)[0] == pytest.approx(360, rel=0.05)


def test_a_heavy_circuits_passing_statevector_is_not_growth() -> None:
    # Flat at 300 MB, with a 64 MB statevector caught in every seventh sample, late ones included.
    memory = [300 + (64 if i % 7 == 6 else 0) for i in range(150)]
    fds = [50 + (20 if i % 9 == 8 else 0) for i in range(150)]
    memory_growth, descriptor_growth = growth_per_hour(samples(memory, fds), total_seconds=300)
    assert abs(memory_growth) < 1 and abs(descriptor_growth) < 1


def test_descriptors_that_grow_steadily_are_a_leak() -> None:
    fds = [40 + i // 2 for i in range(100)]  # one more every 4 s: 900 an hour
    memory = [300.0] * 100
    assert growth_per_hour(samples(memory, fds), total_seconds=200)[1] == pytest.approx(900, rel=0.1)


def test_verdict_passes_a_flat_run_where_every_task_ended_once() -> None:
    audit = Audit(submitted=1200, final_by_client=Counter(completed=1000, failed=150, cancelled=50))
    line = verdict(samples([300.0] * 100), 200, audit)
    assert line == (
        "verdict: PASS: memory +0.0 MB/h, descriptors +0.0/h (linear fit over the second half); "
        "1,200 tasks submitted, each reached a final state exactly once "
        "(completed 1,000, failed 150, cancelled 50), none stuck"
    )


def test_verdict_fails_on_growth_or_on_any_task_problem() -> None:
    audit = Audit(submitted=10, final_by_client=Counter(completed=9), unexpected=["1 bell tasks not final after 300 s"])
    leaking = [300 + i * 0.2 for i in range(100)]  # 0.1 MB/s: 360 MB an hour
    line = verdict(samples(leaking), 200, audit)
    assert line.startswith("verdict: FAIL: memory +360.0 MB/h, descriptors +0.0/h")
    assert "10 tasks submitted (completed 9, failed 0, cancelled 0)" in line
    assert line.endswith("; 1 bell tasks not final after 300 s; memory grows +360.0 MB/h (limit 50)")


def test_table_has_a_row_per_tenth_of_a_short_run() -> None:
    finished = [Finished(at=t / 10, latency=0.015 if t % 3 == 0 else 0.005, status="completed") for t in range(600)]
    finished.append(Finished(at=59.9, latency=9.0, status="failed"))  # only completed tasks count for latency
    rows = table(finished, samples([300.0] * 30), total_seconds=60)
    assert rows[0].startswith("| until | tasks/s | p50 ms | p99 ms |")
    assert len(rows) == 2 + 10
    assert rows[2] == "| 0:06 | 10.0 | 5.0 | 15.0 | 30 | 270 | 50 | 0 | 1.0 |"
    assert rows[-1].startswith("| 1:00 | 10.2 | ")


def test_latency_by_kind_names_each_kind_once() -> None:
    finished = [Finished(at=1, latency=0.004, status="completed", kind="bell")] * 99
    finished += [Finished(at=1, latency=0.1, status="completed", kind="bell")]
    finished += [Finished(at=2, latency=1.5, status="completed", kind="heavy")]
    assert latency_by_kind(finished) == (
        "latency by kind, whole run: bell p50 4.0 ms, p99 4.0 ms (100); heavy p50 1500.0 ms, p99 1500.0 ms (1)"
    )
