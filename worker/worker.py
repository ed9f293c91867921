"""The claim -> run -> record loop and graceful shutdown."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from types import FrameType
from typing import Protocol

from shared.config import Settings
from shared.errors import ConnectionLost, StoreError
from shared.models import Claim, Finish, TaskStatus
from shared.store import DATABASE_CLOCK, Store
from worker.chunk import Chunk, ChunkPolicy
from worker.circuit_limits import CircuitLimits
from worker.claim_size import ClaimSizer, simulator_threads
from worker.housekeeping import Housekeeper
from worker.lease import LeaseKeeper
from worker.results import Outcome, RunControl, RunResult, SimulationJob
from worker.sandbox import SimulationChild
from worker.signals import STOP_SIGNALS, SignalBell

logger = logging.getLogger(__name__)

STORE_RETRY_SECONDS = 1.0
MAX_IDLE_WAIT_SECONDS = 1.0


class Retry:
    """How long to wait after a failed database call: a connection cut under a statement is tried
    again at once, on another connection; anything else, and a second cut in a row, after
    STORE_RETRY_SECONDS. `unsure` remembers a cut: a write may have been committed unseen."""

    def __init__(self) -> None:
        self.unsure = False
        self._cut = False

    def failed(self, error: StoreError, what: str) -> float:
        """Note the failure, log it, and return how many seconds to wait."""
        cut = isinstance(error, ConnectionLost)
        self.unsure = self.unsure or cut
        wait = 0.0 if cut and not self._cut else STORE_RETRY_SECONDS
        self._cut = cut
        logger.warning("%s, retrying %s: %s", what, f"in {wait:.0f} s" if wait else "at once", error)
        return wait

    def succeeded(self) -> None:
        self.unsure = self._cut = False


def new_worker_id() -> str:
    """host:pid:random, so ids stay unique across hosts and pid reuse."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Simulation(Protocol):
    """What runs the claimed tasks' circuits for the worker: `worker.sandbox.SimulationChild` in production."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def run_batch(
        self, jobs: list[SimulationJob], threads: int, timeout: float, control: RunControl
    ) -> Iterator[tuple[int, RunResult]]: ...


class Worker:
    """Claims tasks (several at once when the queue is deep) and runs them in a warm simulation child."""

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
        self._signal_bell: SignalBell | None = None  # while signals_handled(): ends an idle wait
        self.leases = LeaseKeeper(store, self.worker_id, settings.lease_seconds)
        self._chunk: Chunk | None = None
        self.housekeeper = Housekeeper(store, settings, self.worker_id, task_in_hand=self._task_in_hand)
        self.claims = ClaimSizer(settings.max_claim_tasks, settings.claim_window_seconds)
        self.policy = ChunkPolicy(
            stopping=self._stopping.is_set,
            past_grace=self._past_grace,
            others_alive=lambda: self.housekeeper.workers_alive > 1,
        )

    def request_stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        """Signal handler: only set a flag; the loop does the rest."""
        if not self._stopping.is_set():
            self._stop_requested_at = time.monotonic()
            self._stopping.set()

    @contextlib.contextmanager
    def signals_handled(self) -> Iterator[None]:
        """SIGTERM and Ctrl-C ask for a graceful stop, and end an idle wait at once through the
        signal bell; the previous handlers are back afterwards. Call it in the main thread."""
        previous = {number: signal.signal(number, self.request_stop) for number in STOP_SIGNALS}
        try:
            with SignalBell() as self._signal_bell:
                yield
        finally:
            self._signal_bell = None
            for number, handler in previous.items():
                signal.signal(number, handler)

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
        retry = Retry()
        try:
            while not self._stopping.is_set() and (max_tasks is None or handled < max_tasks):
                try:
                    if retry.unsure:
                        self._release_unknown_claims()
                    claims = self._claim(max_tasks - handled if max_tasks is not None else None)
                except StoreError as error:
                    self._stopping.wait(retry.failed(error, "database unavailable"))
                    continue
                retry.succeeded()
                if not claims:
                    if burst:
                        break
                    self._idle()
                    continue
                self._process(claims)
                handled += len(claims)
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
        # SIGTERM or Ctrl-C ends the wait at once too: the wait watches the signal bell.
        bell = self._signal_bell
        self.store.wait_for_work(
            min(self.settings.poll_interval_seconds, MAX_IDLE_WAIT_SECONDS), bell.fileno() if bell else None
        )
        if bell is not None:
            bell.drain()

    def _claim(self, at_most: int | None) -> list[Claim]:
        depth = self.store.queue_depth()
        if depth == 0:
            return []
        size = self.claims.size(depth, self.housekeeper.workers_alive)
        if at_most is not None:
            size = min(size, at_most)
        return self.store.claim(self.worker_id, DATABASE_CLOCK, self.settings.lease_seconds, size)

    def _process(self, claims: list[Claim]) -> None:
        now = time.time()
        for claim in claims:
            logger.info(
                "task %s pending: claimed by %s (attempt %d, waited %.1f ms, %d in this claim)",
                claim.task_id,
                self.worker_id,
                claim.attempt,
                (now - claim.created_at) * 1000,
                len(claims),
            )
        held = self.leases.hold_all(claims)
        chunk = self._chunk = Chunk(claims, held, self.policy, self._write)
        jobs = [SimulationJob(claim.circuit, claim.shots, claim.seed, claim.options, claim.owner) for claim in claims]
        threads = simulator_threads(self.settings.simulator_threads, self.housekeeper.workers_here)
        try:
            for index, result in self.child.run_batch(jobs, threads, self.settings.task_timeout_seconds, chunk):
                chunk.finished(index, result, self._limit_error)
        finally:
            # Results already in hand are written even if the simulation could not go on (a child
            # that will not start): their tasks must not run again. The rest go to their leases.
            try:
                chunk.flush()
            finally:
                self._chunk = None
                self.leases.drop()
        self.claims.observe(chunk.run_seconds)

    def _release_unknown_claims(self) -> None:
        """A claim's answer was lost with its connection, and it may have been committed: put back
        whatever the database says this worker holds (it holds nothing it knows of between claims)."""
        for task_id in self.store.release_claims(self.worker_id):
            logger.info("task %s submitted: returned to the queue, its claim's answer was lost", task_id)

    def _task_in_hand(self) -> str | None:
        chunk = self._chunk
        return chunk.running_task() if chunk is not None else None

    def _limit_error(self, outcome: Outcome) -> str:
        if outcome is Outcome.TIMEOUT:
            limit = self.settings.task_timeout_seconds
            return f"TimeoutError: the simulation ran longer than TASK_TIMEOUT_SECONDS={limit:g} s and was stopped"
        return "WorkerLost: the simulation was stopped because this worker lost the task's lease"

    def _write(self, finishes: list[Finish]) -> list[bool]:
        # A result is worth retrying for: the simulation may have taken minutes. Keep trying while
        # the database is busy; give up if a shutdown's grace has run out (the leases then expire
        # and other workers run the tasks). Each write is refused, and says so, if its lease is gone.
        self.leases.drop([finish.claim.task_id for finish in finishes])
        retry = Retry()
        while True:
            try:
                written = self.store.finish(self.worker_id, finishes)
                break
            except StoreError as error:
                if self._past_grace():
                    logger.warning("database write failed at shutdown, leaving the tasks to their leases: %s", error)
                    return [False] * len(finishes)
                time.sleep(retry.failed(error, "database write failed"))
        if retry.unsure:
            # An earlier try may have been committed before its answer was lost: the guarded write
            # then finds its row settled already. Ours, if it holds what we wrote, under our attempt.
            written = [ok or self._recorded(finish) for finish, ok in zip(finishes, written, strict=True)]
        return written

    def _recorded(self, finish: Finish) -> bool:
        """Whether the database holds this final state as this worker's attempt wrote it."""
        if finish.status is TaskStatus.SUBMITTED:
            return False  # a hand-back leaves nothing of ours behind to recognise
        try:
            task = self.store.get_task(finish.claim.task_id)
        except StoreError:
            return False
        return (
            task is not None
            and task.status is finish.status
            and task.worker_id == self.worker_id
            and task.attempts == finish.claim.attempt
        )
