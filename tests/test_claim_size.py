"""How many tasks a worker claims at once, and its simulations' threads (pure logic)."""

from __future__ import annotations

import os

import pytest

from worker.claim_size import ClaimSizer, simulator_threads

pytestmark = pytest.mark.database_independent


def test_one_task_at_a_time_until_a_task_has_been_timed() -> None:
    assert ClaimSizer(32).size(queue_depth=1000, live_workers=1) == 1


def test_quick_tasks_in_a_deep_queue_are_claimed_up_to_the_limit() -> None:
    sizer = ClaimSizer(32)
    sizer.observe([0.002] * 5)
    assert sizer.size(queue_depth=10_000, live_workers=2) == 32
    assert ClaimSizer(1).size(queue_depth=10_000, live_workers=2) == 1  # MAX_CLAIM_TASKS=1: as before


def test_a_short_queue_is_shared_between_the_live_workers() -> None:
    sizer = ClaimSizer(32)
    sizer.observe([0.002])
    assert sizer.size(queue_depth=10, live_workers=2) == 5
    assert sizer.size(queue_depth=3, live_workers=4) == 1


def test_slow_tasks_are_claimed_one_at_a_time() -> None:
    sizer = ClaimSizer(32)
    sizer.observe([0.002] * 10)
    sizer.observe([5.0])  # one slow task is enough to stop claiming ahead
    assert sizer.size(queue_depth=1000, live_workers=1) == 1
    sizer.observe([0.03] * 30)  # tasks of 30 ms: a claim holds about 0.1 s of them
    assert sizer.size(queue_depth=1000, live_workers=1) == 3


def test_threads_share_the_cores_between_the_workers_on_a_host() -> None:
    cores = len(os.sched_getaffinity(0))
    assert simulator_threads(0, workers_on_host=1) == cores
    assert simulator_threads(0, workers_on_host=cores) == 1
    assert simulator_threads(0, workers_on_host=cores * 4) == 1
    assert simulator_threads(3, workers_on_host=8) == 3  # SIMULATOR_THREADS wins
