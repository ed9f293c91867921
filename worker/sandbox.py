"""A warm child process that runs simulations, so a crash, a hang or a memory blow-up costs one task.

The parent never imports qiskit: the child imports `worker.executor` once and then serves jobs
over a pipe until it is told to stop, is killed, or its parent dies.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import os
import resource
import signal
import time
from collections.abc import Iterator
from typing import Any

from shared.logs import OneLineFormatter
from worker.circuit_limits import CircuitLimits
from worker.messages import memory_limit_error
from worker.results import Outcome, RunControl, RunResult, SimulationJob

logger = logging.getLogger(__name__)

READY = "ready"
# The parent sends (index, SimulationJob, threads) and the child answers (index, RunResult); None
# stops the child. One job at a time: a job not yet sent cannot have started, so it can still be
# handed back, cancelled or released at once; the parent sends the next one as soon as an answer
# arrives, before recording it, so the child waits only for a pipe round trip between tasks.
CHECK_SECONDS = 0.05  # how often a running job asks the worker whether to stop, skip or write
START_TIMEOUT_SECONDS = 300.0
_PR_SET_PDEATHSIG = 1
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024
# The child is stopped once its resident memory passes WORKER_MAX_MEMORY_MB plus this margin
# (the interpreter, Qiskit and Aer take ~120 MiB before any circuit), checked every
# MEMORY_CHECK_SECONDS while it runs. Growth seen from hostile circuits is at most a few hundred
# MiB/s, so the overshoot stays within tens of MiB.
RSS_MARGIN_MB = 256
MEMORY_CHECK_SECONDS = 0.02
# A backstop the kernel enforces even if the parent stalls: the child's address space may grow
# by WORKER_MAX_MEMORY_MB plus this margin (thread stacks and allocator arenas are reserved,
# not used, so they need room) over what it held after its warm-up.
ADDRESS_SPACE_MARGIN_MB = 1024


def _die_with_parent() -> None:
    # If the worker is killed with SIGKILL, take the simulation down with it instead of
    # leaving an orphan burning a core for a task that is already being retried elsewhere.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def _log_one_line_per_event() -> None:
    """The child's log lines (ours and the libraries') go through the same one-line formatter as
    the worker's. Aer's own warning on a failed simulation repeats, over several lines, what the
    task's one-line error already says: it is left out."""
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s simulation[%(process)d] %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    logging.getLogger("qiskit_aer").setLevel(logging.ERROR)
    logging.getLogger("qiskit").setLevel(logging.WARNING)


def _limit_address_space(max_memory_mb: int) -> None:
    with open("/proc/self/statm") as statm:
        reserved = int(statm.read().split()[0]) * _PAGE_BYTES
    limit = reserved + (max_memory_mb + ADDRESS_SPACE_MARGIN_MB) * MIB
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _child_main(
    conn: multiprocessing.connection.Connection, max_memory_mb: int, threads: int, limits: CircuitLimits
) -> None:
    # Ctrl-C reaches the whole process group; the parent decides what happens to a running task.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent()
    _log_one_line_per_event()
    from worker import executor

    simulator = executor.Simulator(max_memory_mb, threads, limits)
    warm = executor.execute(simulator, executor.WARM_UP_CIRCUIT, 16, 0)
    _limit_address_space(max_memory_mb)
    conn.send((READY, warm))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        index, job, simulator.threads = message
        conn.send((index, executor.execute(simulator, job.circuit, job.shots, job.seed, job.options)))


class SimulationChild:
    """Owns one child process; restarts it after a crash, a timeout or an abort."""

    def __init__(self, max_memory_mb: int, threads: int = 0, limits: CircuitLimits | None = None) -> None:
        self.max_memory_mb = max_memory_mb
        self.threads = threads
        self.limits = limits or CircuitLimits()
        self.max_rss_bytes = (max_memory_mb + RSS_MARGIN_MB) * MIB
        self._context = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._conn: multiprocessing.connection.Connection | None = None
        self._next_check = 0.0
        self._deadline = 0.0  # of the running job

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start the child and wait until its imports are done and Aer has run once."""
        parent_conn, child_conn = self._context.Pipe()
        process = self._context.Process(
            target=_child_main,
            args=(child_conn, self.max_memory_mb, self.threads, self.limits),
            name="simulation",
            daemon=True,
        )
        process.start()
        child_conn.close()
        self._process, self._conn = process, parent_conn
        ready = multiprocessing.connection.wait([parent_conn, process.sentinel], START_TIMEOUT_SECONDS)
        if parent_conn not in ready:
            self.kill()
            raise RuntimeError("the simulation process did not start")
        message, warm = parent_conn.recv()
        if message != READY or warm.outcome is not Outcome.COUNTS:
            self.kill()
            raise RuntimeError(f"the simulation process failed its warm-up run: {warm.error}")
        logger.info("simulation process %d ready", process.pid)

    def kill(self) -> None:
        """Stop the child at once (SIGKILL) and reap it."""
        if self._process is not None:
            self._process.kill()
            self._process.join(10)
        if self._conn is not None:
            self._conn.close()
        self._process, self._conn = None, None

    def stop(self) -> None:
        """Ask the child to exit; kill it if it does not."""
        if self._process is None or self._conn is None:
            return
        try:
            self._conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self._process.join(5)
        self.kill()

    def run_batch(
        self, jobs: list[SimulationJob], threads: int, timeout: float, control: RunControl
    ) -> Iterator[tuple[int, RunResult]]:
        """Run the jobs one after another in the child, yielding (index, result) as each ends; never
        raises for anything a circuit does. A job that crashes, hangs, blows its memory or is
        aborted costs the child (a new one runs the rest); a job the worker skips before it
        started answers ABORTED without running."""
        unsent = collections.deque(range(len(jobs)))
        running: int | None = None
        while running is not None or unsent:
            for index in [i for i in unsent if control.should_skip(i)]:
                unsent.remove(index)
                yield index, RunResult(Outcome.ABORTED)
            if running is None:
                running = self._start_next(jobs, unsent, threads, timeout, control)
                continue
            answer = self._answer(running, control)
            if answer is None:
                continue
            running = None
            if self._process is not None:  # the child waits: give it the next job before this one is recorded
                running = self._start_next(jobs, unsent, threads, timeout, control)
            yield answer

    def _start_next(
        self,
        jobs: list[SimulationJob],
        unsent: collections.deque[int],
        threads: int,
        timeout: float,
        control: RunControl,
    ) -> int | None:
        """Send the child the first job not to be skipped, starting a child if needed; its index."""
        index = next((i for i in unsent if not control.should_skip(i)), None)
        if index is None:
            return None
        if self._process is None or not self._process.is_alive():
            self.kill()
            self.start()
        assert self._conn is not None
        try:
            self._conn.send((index, jobs[index], threads))
        except (BrokenPipeError, OSError):
            self.kill()  # the child is gone; the job was never started: the next call starts another
            return None
        unsent.remove(index)
        self._deadline = time.monotonic() + timeout
        control.started(index)
        return index

    def _answer(self, running: int, control: RunControl) -> tuple[int, RunResult] | None:
        """Wait a moment for the running job: its answer, or why it was stopped; None if it still runs."""
        assert self._conn is not None and self._process is not None
        deadline = self._deadline
        wait_for = min(MEMORY_CHECK_SECONDS, max(0.0, deadline - time.monotonic()))
        ready = multiprocessing.connection.wait([self._conn, self._process.sentinel], wait_for)
        if self._conn in ready:
            try:
                index, result = self._conn.recv()
            except (EOFError, OSError):
                return running, self._crashed()
            if result.memory_exceeded:
                self.kill()  # a MemoryError may have left the interpreter in a poor state
            return index, result
        if ready:  # the sentinel alone: the child died without answering
            return running, self._crashed()
        if self._resident_bytes() > self.max_rss_bytes:
            logger.warning(
                "simulation process %s passed WORKER_MAX_MEMORY_MB=%d plus %d MiB; stopping it",
                self.pid,
                self.max_memory_mb,
                RSS_MARGIN_MB,
            )
            self.kill()
            return running, RunResult(Outcome.ERROR, error=memory_limit_error(self.max_memory_mb))
        now = time.monotonic()
        if now >= deadline:
            self.kill()
            return running, RunResult(Outcome.TIMEOUT)
        if now >= self._next_check:
            self._next_check = now + CHECK_SECONDS
            control.tick()
            if control.should_abort(running):
                self.kill()
                return running, RunResult(Outcome.ABORTED)
        return None

    def _resident_bytes(self) -> int:
        try:
            with open(f"/proc/{self.pid}/statm") as statm:
                return int(statm.read().split()[1]) * _PAGE_BYTES
        except (OSError, ValueError, IndexError):
            return 0  # gone: the sentinel says so on the next wait

    def _crashed(self) -> RunResult:
        assert self._process is not None
        self._process.join(5)
        code = self._process.exitcode
        self.kill()
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            why = f"was killed by {name}" + (" (often the kernel's out-of-memory killer)" if name == "SIGKILL" else "")
        else:
            why = f"exited with code {code}"
        return RunResult(
            Outcome.CRASHED,
            error=f"SimulationCrashed: the simulation process {why} while running this circuit; "
            "the worker has started a new one",
        )
