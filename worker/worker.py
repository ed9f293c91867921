"""The claim -> run -> record loop and graceful shutdown."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol

from shared.config import Settings
from shared.errors import StoreError
from shared.models import Claim
from shared.store import Store
from worker.circuit_limits import CircuitLimits
from worker.housekeeping import Housekeeper
from worker.lease import HeldLease, LeaseKeeper
from worker.results import Outcome, RunResult
from worker.sandbox import SimulationChild

logger = logging.getLogger(__name__)

STORE_RETRY_SECONDS = 1.0
MAX_IDLE_WAIT_SECONDS = 1.0


def new_worker_id() -> str:
    """host:pid:random, so ids stay unique across hosts and pid reuse."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Simulation(Protocol):
    """What runs a task's circuit for the worker: `worker.sandbox.SimulationChild` in production."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def run(
        self,
        circuit: str,
        shots: int,
        seed: int | None,
        options: dict[str, Any] | None,
        timeout: float,
        should_abort: Callable[[], bool],
    ) -> RunResult: ...


class Worker:
    """Claims tasks one at a time and runs each in a warm simulation child."""

    def __init__(
        self, settings: Settings, store: Store, worker_id: str | None = None, child: Simulation | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.worker_id = worker_id or new_worker_id()
        limits = CircuitLimits(
            max_qubits=settings.max_qubits,
            max_clbits=settings.max_clbits,
            max_loop_iterations=settings.max_loop_iterations,
            max_unrolled_operations=settings.max_unrolled_operations,
        )
        # Swappable, as rq's SimpleWorker: the tests record outcomes without a child process.
        self.child: Simulation = child or SimulationChild(
            settings.worker_max_memory_mb, settings.simulator_threads, limits
        )
        self._stopping = threading.Event()
        self._stop_requested_at = 0.0
        self.leases = LeaseKeeper(store, self.worker_id, settings.lease_seconds)
        self.housekeeper = Housekeeper(store, settings, self.worker_id, task_in_hand=self.leases.task_id)

    def request_stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        """Signal handler: only set a flag; the loop does the rest."""
        if not self._stopping.is_set():
            self._stop_requested_at = time.monotonic()
            self._stopping.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def _past_grace(self) -> bool:
        return (
            self._stopping.is_set()
            and time.monotonic() - self._stop_requested_at >= self.settings.shutdown_grace_seconds
        )

    def run(self, burst: bool = False, max_tasks: int | None = None) -> int:
        """Serve until stopped (or, with burst, until the queue is empty); returns the tasks handled."""
        self.child.start()
        self.housekeeper.start()
        self.leases.start()
        self.store.listen()
        logger.info("worker %s started on database %s", self.worker_id, self.settings.database_label)
        handled = 0
        try:
            while not self._stopping.is_set() and (max_tasks is None or handled < max_tasks):
                try:
                    claim = self._next_claim()
                except StoreError as error:
                    logger.warning("database unavailable, retrying in %.0f s: %s", STORE_RETRY_SECONDS, error)
                    self._stopping.wait(STORE_RETRY_SECONDS)
                    continue
                if claim is None:
                    if burst:
                        break
                    self._idle()
                    continue
                self._process(claim)
                handled += 1
        finally:
            self.leases.stop()
            self.housekeeper.stop()
            self.child.stop()
            self.store.close()
            logger.info("worker %s stopped after %d tasks", self.worker_id, handled)
        return handled

    def _idle(self) -> None:
        # A new task wakes the worker at once (PostgreSQL NOTIFY, or SQLite's wake-up socket;
        # with DATABASE_POLL_ONLY the store just sleeps); the poll interval is only the safety net.
        # A signal does not cut that wait short, so it lasts at most a second, which bounds how
        # long a SIGTERM waits on an idle worker.
        self.store.wait_for_work(min(self.settings.poll_interval_seconds, MAX_IDLE_WAIT_SECONDS))

    def _next_claim(self) -> Claim | None:
        if not self.store.has_work():
            return None
        return self.store.claim_next(self.worker_id, time.time(), self.settings.lease_seconds)

    def _process(self, claim: Claim) -> None:
        started = time.monotonic()
        waited_ms = (time.time() - claim.created_at) * 1000
        logger.info(
            "task %s pending: claimed by %s (attempt %d, waited %.1f ms)",
            claim.task_id,
            self.worker_id,
            claim.attempt,
            waited_ms,
        )
        held = self.leases.hold(claim)
        try:
            result = self.child.run(
                claim.circuit,
                claim.shots,
                claim.seed,
                claim.options,
                timeout=self.settings.task_timeout_seconds,
                should_abort=lambda: held.should_stop() or self._past_grace(),
            )
        finally:
            self.leases.drop()
        elapsed_ms = (time.monotonic() - started) * 1000
        self._record(claim, result, elapsed_ms, held)

    def _record(self, claim: Claim, result: RunResult, elapsed_ms: float, held: HeldLease) -> None:
        task_id = claim.task_id
        if result.outcome is Outcome.ABORTED and held.cancel_requested.is_set():
            written = self._write(lambda: self.store.mark_cancelled(claim, self.worker_id, time.time()))
            state, error = "cancelled", ""
        elif result.outcome is Outcome.ABORTED and not held.lost.is_set():
            released = self._write(lambda: self.store.release(claim, self.worker_id))
            logger.info("task %s submitted: returned to the queue at shutdown (released=%s)", task_id, released)
            return
        elif result.outcome is Outcome.COUNTS:
            written = self._write(
                lambda: self.store.complete(
                    claim, self.worker_id, result.counts, time.time(), result.details, result.output
                )
            )
            state, error = "completed", ""
        else:
            error = result.error or self._limit_error(result.outcome)
            written = self._write(lambda: self.store.fail(claim, self.worker_id, error, time.time(), result.details))
            state = "failed"
        if written:
            suffix = f": {error}" if error else ""
            logger.info("task %s %s in %.1f ms%s", task_id, state, elapsed_ms, suffix)
        else:
            logger.warning("task %s: result discarded, this worker lost its lease to another worker", task_id)

    def _limit_error(self, outcome: Outcome) -> str:
        if outcome is Outcome.TIMEOUT:
            limit = self.settings.task_timeout_seconds
            return f"TimeoutError: the simulation ran longer than TASK_TIMEOUT_SECONDS={limit:g} s and was stopped"
        return "WorkerLost: the simulation was stopped because this worker lost the task's lease"

    def _write(self, write: Callable[[], bool]) -> bool:
        # A result is worth retrying for: the simulation may have taken minutes. Keep trying while
        # the database is busy; give up if the lease is gone (the write returns False) or a
        # shutdown's grace has run out (the lease then expires and another worker runs the task).
        while True:
            try:
                return write()
            except StoreError as error:
                if self._past_grace():
                    logger.warning("database write failed at shutdown, leaving the task to its lease: %s", error)
                    return False
                logger.warning("database write failed, retrying in %.0f s: %s", STORE_RETRY_SECONDS, error)
                time.sleep(STORE_RETRY_SECONDS)
