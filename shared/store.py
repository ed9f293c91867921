"""The storage interface both processes use; shared.backends picks the backend that implements it."""

from __future__ import annotations

import abc
from typing import Any

from shared.models import (
    ApiKey,
    Batch,
    CancelOutcome,
    Claim,
    Finish,
    KeyLookup,
    LeaseStatus,
    NewTask,
    OwnerUsage,
    QueueStats,
    RunDetails,
    SubmitOutcome,
    Task,
    TaskStatus,
    TaskSummary,
)
from shared.wakeup import Doorbell

NO_LIMIT = 2**62  # bytes: more than any database holds

# `now` for the methods that stamp or compare lease and heartbeat times: the database's own clock,
# which every host shares (what the service always passes). A float pins the time instead (tests).
DATABASE_CLOCK = None


class Store(abc.ABC):
    """Tasks table and queue in one. Every method is one short transaction."""

    @abc.abstractmethod
    def listen(self) -> None:
        """Start receiving new-task wake-ups; a worker calls it before its first look for work."""

    @abc.abstractmethod
    def wait_for_work(self, timeout: float, interrupt: int | None = None) -> None:
        """Block until a new task may have arrived, or at most timeout seconds (a backend that cannot
        be woken just sleeps): the caller looks for work again either way. The wait also ends as
        soon as the file descriptor `interrupt` is readable (a worker's signal bell)."""

    def close(self) -> None:  # noqa: B027 - optional: only backends holding connections override it
        """Release connections; the store is not used afterwards."""

    @abc.abstractmethod
    def initialize(self) -> None:
        """Create or migrate the schema; safe to call from every process at start-up."""

    # --- the API's side -------------------------------------------------------------------

    @abc.abstractmethod
    def create_task(
        self, task_id: str, task: NewTask, now: float, max_queued_bytes: int = NO_LIMIT, quota: int | None = None
    ) -> bool:
        """Insert a submitted task, durable once this returns True; False (nothing stored) when the
        circuit bytes of unfinished tasks would pass max_queued_bytes. QuotaExceeded (nothing
        stored) when the task owner's tasks submitted or pending would pass quota."""

    @abc.abstractmethod
    def create_task_once(
        self,
        key: str,
        request_hash: str,
        task_id: str,
        task: NewTask,
        now: float,
        max_queued_bytes: int,
        key_ttl_seconds: float,
        quota: int | None = None,
    ) -> tuple[SubmitOutcome, str]:
        """create_task under an Idempotency-Key, in one transaction: the outcome and the task id
        (the new one, or the key's first). A key older than key_ttl_seconds is forgotten."""

    @abc.abstractmethod
    def create_batch(
        self,
        batch_id: str,
        tasks: list[tuple[str, NewTask]],
        tags: dict[str, str] | None,
        now: float,
        max_queued_bytes: int = NO_LIMIT,
        idempotency: tuple[str, str, float] | None = None,
        quota: int | None = None,
    ) -> tuple[SubmitOutcome, str]:
        """Store a batch and all its (task id, task) in order, in one transaction, or nothing when
        the queue's circuit bytes would pass max_queued_bytes or the owner's quota (as create_task;
        the tasks share one owner, the batch's); under an Idempotency-Key (key, request hash, TTL
        seconds) as create_task_once. The outcome and the batch id."""

    @abc.abstractmethod
    def get_batch(self, batch_id: str) -> Batch | None:
        """The batch and its tasks' states, or None."""

    @abc.abstractmethod
    def batch_tasks(self, batch_id: str, after_index: int, limit: int) -> tuple[list[Task], int | None]:
        """The batch's tasks in request order after that index, and the index to continue after."""

    @abc.abstractmethod
    def cancel_batch(self, batch_id: str, now: float) -> None:
        """Cancel every submitted task of the batch; ask the workers to stop the pending ones."""

    @abc.abstractmethod
    def prune_idempotency_keys(self, before: float) -> int:
        """Forget keys created before then; returns how many."""

    @abc.abstractmethod
    def queued_bytes(self) -> int:
        """Bytes of circuit text of the submitted and pending tasks."""

    @abc.abstractmethod
    def get_task(self, task_id: str) -> Task | None:
        """The task with this id, or None."""

    @abc.abstractmethod
    def get_circuit(self, task_id: str) -> tuple[str, str | None, str] | None:
        """The task's circuit text, its text diagram once a worker drew it, and its owner; None if no such task."""

    @abc.abstractmethod
    def list_tasks(
        self,
        status: TaskStatus | None,
        before_seq: int | None,
        limit: int,
        tags: list[tuple[str, str]] | None = None,
        batch_id: str | None = None,
        owner: str | None = None,
    ) -> tuple[list[TaskSummary], int | None]:
        """Newest first, optionally one state (tags, batch, owner), strictly older than before_seq;
        and the next page's key."""

    @abc.abstractmethod
    def cancel(self, task_id: str, now: float) -> CancelOutcome | None:
        """Cancel a submitted task now, or ask the worker to stop a pending one; None if no such task."""

    @abc.abstractmethod
    def finished_version(self) -> float:
        """A number that changes whenever any task reaches a final state; cheap enough to ask often."""

    @abc.abstractmethod
    def finished_among(self, task_ids: list[str]) -> list[Task]:
        """Those of these tasks that are completed, failed or cancelled, whole, as get_task gives them."""

    def finished_bell(self) -> Doorbell | None:
        """A doorbell that rings when tasks may have finished, for an event loop to watch; None
        where the backend has none, or cannot open one now (the caller then asks
        finished_version often)."""
        return None

    @abc.abstractmethod
    def stats(self, live_within: float, now: float | None = DATABASE_CLOCK) -> QueueStats:
        """Counts, counters, histograms, and workers heard from within the last live_within seconds."""

    # --- API keys and usage ----------------------------------------------------------------

    @abc.abstractmethod
    def create_key(self, key: ApiKey, token_hash: str) -> bool:
        """Store a new key under the hash of its token; False (nothing stored) when the name is taken."""

    @abc.abstractmethod
    def list_keys(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""

    @abc.abstractmethod
    def revoke_key(self, name: str, now: float) -> bool:
        """Revoke the key of that name; False when no unrevoked key has it."""

    @abc.abstractmethod
    def find_key(self, token_hash: str) -> KeyLookup:
        """Whether any key exists, and the key whose token has this hash (revoked or not)."""

    @abc.abstractmethod
    def touch_key(self, key_id: str, now: float, stale_after: float) -> None:
        """Record that the key was used now, unless it was recorded less than stale_after seconds ago."""

    @abc.abstractmethod
    def usage(self, owner: str | None, now: float) -> list[OwnerUsage]:
        """Tasks submitted, shots run and simulation seconds, today (UTC) and in total: one owner's, or all."""

    # --- the worker's side ----------------------------------------------------------------

    @abc.abstractmethod
    def recover_expired(self, now: float | None, max_attempts: int) -> list[tuple[str, TaskStatus, int]]:
        """Settle tasks whose lease expired (requeue, fail past max_attempts, or cancel); (id, state, attempts)."""

    @abc.abstractmethod
    def queue_depth(self) -> int:
        """How many tasks are submitted and unclaimed (a kept count, not a scan)."""

    @abc.abstractmethod
    def live_worker_count(self, within: float, host: str, now: float | None = DATABASE_CLOCK) -> tuple[int, int]:
        """How many workers were heard from within the last `within` seconds: in all, and on that host."""

    @abc.abstractmethod
    def claim(self, worker_id: str, now: float | None, lease_seconds: float, limit: int) -> list[Claim]:
        """Claim up to limit of the oldest submitted tasks for worker_id, in one statement, oldest first;
        each lease runs out lease_seconds after now (DATABASE_CLOCK: the database's time)."""

    def claim_next(self, worker_id: str, now: float | None, lease_seconds: float) -> Claim | None:
        """Claim the oldest submitted task, if any."""
        claims = self.claim(worker_id, now, lease_seconds, 1)
        return claims[0] if claims else None

    @abc.abstractmethod
    def renew_leases(
        self, claims: list[Claim], worker_id: str, lease_seconds: float, now: float | None = DATABASE_CLOCK
    ) -> list[LeaseStatus]:
        """Extend the leases to lease_seconds from now, in one transaction; for each, whether the
        worker lost it or someone asked to cancel the task."""

    def renew_lease(
        self, claim: Claim, worker_id: str, lease_seconds: float, now: float | None = DATABASE_CLOCK
    ) -> LeaseStatus:
        return self.renew_leases([claim], worker_id, lease_seconds, now)[0]

    @abc.abstractmethod
    def finish(self, worker_id: str, finishes: list[Finish]) -> list[bool]:
        """Record how each claimed task ended (or put it back in the queue), in one transaction;
        for each, False, and nothing written, when the worker's lease on it was lost."""

    def complete(
        self,
        claim: Claim,
        worker_id: str,
        result: dict[str, int] | None,
        now: float,
        details: RunDetails,
        output: dict[str, Any] | None = None,
    ) -> bool:
        """Record counts (None for a sweep or a circuit without measurements) and the rest of the
        output (memory, expectation values, a sweep's results)."""
        finish = Finish(claim, TaskStatus.COMPLETED, now, result=result, output=output, details=details)
        return self.finish(worker_id, [finish])[0]

    def fail(self, claim: Claim, worker_id: str, error: str, now: float, details: RunDetails) -> bool:
        """Record a one-line error."""
        return self.finish(worker_id, [Finish(claim, TaskStatus.FAILED, now, error=error, details=details)])[0]

    def mark_cancelled(self, claim: Claim, worker_id: str, now: float) -> bool:
        """Record that the worker stopped the task on request."""
        return self.finish(worker_id, [Finish(claim, TaskStatus.CANCELLED, now)])[0]

    @abc.abstractmethod
    def release_claims(self, worker_id: str) -> list[str]:
        """Put back every task worker_id holds, spending no attempt: for a worker that lost the
        answer to a claim, and so may hold tasks it does not know of. Their ids."""

    def release(self, claim: Claim, worker_id: str) -> bool:
        """Put a claimed task back in the queue without spending an attempt (shutdown)."""
        return self.finish(worker_id, [Finish(claim, TaskStatus.SUBMITTED, 0.0)])[0]

    @abc.abstractmethod
    def beat_worker(
        self, worker_id: str, host: str, pid: int, task_id: str | None, now: float | None = DATABASE_CLOCK
    ) -> None:
        """Register the worker or refresh its heartbeat (the time now) and the task in its hands."""

    @abc.abstractmethod
    def remove_worker(self, worker_id: str) -> None:
        """Forget a worker that is shutting down cleanly."""

    @abc.abstractmethod
    def forget_workers(self, silent_for: float, now: float | None = DATABASE_CLOCK) -> None:
        """Forget workers not heard from for silent_for seconds (they died without saying goodbye)."""

    @abc.abstractmethod
    def prune_finished(self, before: float, limit: int) -> int:
        """Delete up to limit completed, failed or cancelled tasks finished before then; returns how many."""

    @abc.abstractmethod
    def explain_claim(self) -> str:
        """The database's plan for finding the next task to claim (it must use an index)."""
