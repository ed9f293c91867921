"""One claim of several tasks while the simulation runs them: what to stop, skip or hand back, and
their results, written together."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from shared.models import Claim, Finish, TaskStatus
from worker.lease import HeldLease
from worker.results import Outcome, RunResult

logger = logging.getLogger(__name__)

# Results wait at most about this long to be written in one transaction with the ones after them.
FLUSH_AFTER_SECONDS = 0.02
# With other workers alive, the claims not started yet go back to the queue once the running task
# has taken this long: a slow task among quick ones never leaves another worker idle for long.
HAND_BACK_AFTER_SECONDS = 0.5


@dataclass(frozen=True)
class ChunkPolicy:
    """What the worker tells a chunk about the world around it."""

    stopping: Callable[[], bool]  # a shutdown was asked for: start nothing more
    past_grace: Callable[[], bool]  # the shutdown's grace is over: stop the running task too
    others_alive: Callable[[], bool]  # other workers could take what this one hands back


class Chunk:
    """The worker's side of `worker.results.RunControl` for one claim, and its bookkeeping."""

    def __init__(
        self,
        claims: list[Claim],
        held: list[HeldLease],
        policy: ChunkPolicy,
        write: Callable[[list[Finish]], list[bool]],
    ) -> None:
        self.claims, self.held, self.policy, self.write = claims, held, policy, write
        self.running: int | None = None
        self._started_at: dict[int, float] = {}  # wall clock, for the record
        self._started: dict[int, float] = {}  # monotonic, for elapsed times
        self._together: dict[int, int] = {}  # how many tasks ran in the task's Aer call
        self._handed_back = False
        self._ended: set[int] = set()
        self._pending: list[tuple[Finish, float | None]] = []  # with the run's ms, if it ran
        self._oldest_pending = 0.0
        self.run_seconds: list[float] = []  # how long each task that really ran took

    # --- RunControl ---------------------------------------------------------------------------

    def started(self, index: int, together: int = 1) -> None:
        self.running = index
        self._together[index] = together
        self._started[index] = time.monotonic()
        self._started_at[index] = time.time()

    def should_abort(self, index: int) -> bool:
        return self.held[index].should_stop() or self.policy.past_grace()

    def should_skip(self, index: int) -> bool:
        return self.held[index].should_stop() or self.policy.stopping() or self._hand_back()

    def tick(self) -> None:
        if self._pending and time.monotonic() - self._oldest_pending >= FLUSH_AFTER_SECONDS:
            self.flush()

    # --- results ------------------------------------------------------------------------------

    def running_task(self) -> str | None:
        """The task whose simulation runs now, if any."""
        running = self.running
        return self.claims[running].task_id if running is not None and running not in self._ended else None

    def finished(self, index: int, result: RunResult, limit_error: Callable[[Outcome], str]) -> None:
        """Note how the task at index ended; written with the next flush."""
        self._ended.add(index)
        claim, held = self.claims[index], self.held[index]
        now = time.time()
        # A task run with others is timed at its share of their call.
        elapsed = (time.monotonic() - self._started[index]) / self._together[index] if index in self._started else None
        if elapsed is not None and result.outcome in (Outcome.COUNTS, Outcome.ERROR):
            self.run_seconds.append(elapsed)
        started_at = self._started_at.get(index)
        if result.outcome is Outcome.ABORTED and held.cancel_requested.is_set():
            finish = Finish(claim, TaskStatus.CANCELLED, now)
        elif result.outcome is Outcome.ABORTED and not held.lost.is_set():
            finish = Finish(claim, TaskStatus.SUBMITTED, now)
        elif result.outcome is Outcome.COUNTS:
            finish = Finish(
                claim,
                TaskStatus.COMPLETED,
                now,
                started_at,
                result=result.counts,
                output=result.output,
                details=result.details,
            )
        else:
            error = result.error or limit_error(result.outcome)
            finish = Finish(claim, TaskStatus.FAILED, now, started_at, error=error, details=result.details)
        if not self._pending:
            self._oldest_pending = time.monotonic()
        self._pending.append((finish, elapsed * 1000 if elapsed is not None else None))
        self.tick()

    def flush(self) -> None:
        """Write the results noted so far, in one transaction, and log each."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        written = self.write([finish for finish, _ in pending])
        for (finish, elapsed_ms), ok in zip(pending, written, strict=True):
            task_id = finish.claim.task_id
            if finish.status is TaskStatus.SUBMITTED:
                why = "at shutdown" if self.policy.stopping() else "unstarted, for another worker to take"
                logger.info("task %s submitted: returned to the queue %s (released=%s)", task_id, why, ok)
            elif not ok:
                logger.warning("task %s: result discarded, this worker lost its lease to another worker", task_id)
            else:
                suffix = f": {finish.error}" if finish.error else ""
                took = f" in {elapsed_ms:.1f} ms" if elapsed_ms is not None else ""
                logger.info("task %s %s%s%s", task_id, finish.status.value, took, suffix)

    def _hand_back(self) -> bool:
        if self._handed_back:
            return True
        running = self.running
        if running is None or not self.policy.others_alive():
            return False
        if time.monotonic() - self._started[running] >= HAND_BACK_AFTER_SECONDS:
            self._handed_back = True
        return self._handed_back
