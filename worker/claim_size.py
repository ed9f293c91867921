"""How many tasks a worker claims at once, and how many threads each simulation may use."""

from __future__ import annotations

import math
import os

# How fast the estimate of a task's run time follows the latest tasks.
SMOOTHING = 0.2


class ClaimSizer:
    """Claims grow with the queue's depth per live worker and shrink with the tasks' run time.

    Until a task has run, and after slow ones, a worker claims one task at a time (as before
    claims of several existed); a deep queue of quick tasks is claimed up to MAX_CLAIM_TASKS at once.
    """

    def __init__(self, max_claim_tasks: int, window_seconds: float = 0.1) -> None:
        # A claim holds about window_seconds of expected work (CLAIM_WINDOW_SECONDS): enough quick
        # tasks that a claim, a commit and a lease renewal serve many, and little enough that the
        # queue's tail stays shared between the workers.
        self.max_claim_tasks = max_claim_tasks
        self.window_seconds = window_seconds
        self.task_seconds: float | None = None

    def size(self, queue_depth: int, live_workers: int) -> int:
        if self.task_seconds is None or self.max_claim_tasks <= 1:
            return 1
        fair_share = math.ceil(queue_depth / max(1, live_workers))
        in_window = int(self.window_seconds / max(self.task_seconds, 1e-6))
        return max(1, min(self.max_claim_tasks, fair_share, in_window))

    def observe(self, run_seconds: list[float]) -> None:
        for seconds in run_seconds:
            if self.task_seconds is None:
                self.task_seconds = seconds
            else:
                self.task_seconds += SMOOTHING * (seconds - self.task_seconds)


def simulator_threads(configured: int, workers_on_host: int) -> int:
    """SIMULATOR_THREADS if set; else the cores this process may use, shared by the live workers on
    this host (two workers on two cores: one thread each, which runs small circuits twice as fast
    as both letting Aer take every core)."""
    if configured:
        return configured
    return max(1, len(os.sched_getaffinity(0)) // max(1, workers_on_host))
