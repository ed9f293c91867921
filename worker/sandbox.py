"""A warm child process that runs simulations, so a crash, a hang or a memory blow-up costs one task.

The parent never imports qiskit. The child is forked from a fork server that has imported
`worker.executor` once (see `worker.fork_server`), so a new child is ready in tens of milliseconds;
it runs Aer once to warm up and then serves jobs over a pipe until it is told to stop, is killed,
or its parent dies.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import itertools
import logging
import multiprocessing
import multiprocessing.connection
import os
import re
import resource
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

from shared.logs import OneLineFormatter
from shared.runtime import freeze_what_is_loaded
from worker.circuit_limits import CircuitLimits
from worker.messages import memory_limit_error
from worker.results import Outcome, RunControl, RunResult, SimulationJob

logger = logging.getLogger(__name__)

READY = "ready"
FORK_SERVER_PRELOAD = "worker.fork_server"
# The parent sends ([(index, SimulationJob), ...], threads) and the child answers
# [(index, RunResult or None), ...]; None stops the child. Usually one job at a time: a job not
# yet sent cannot have started, so it can still be handed back, cancelled or released at once; the
# parent sends the next one as soon as an answer arrives, before recording it, so the child waits
# only for a pipe round trip between tasks. Small plain tasks go together, up to GROUP_MAX_TASKS,
# and the child runs them in one Aer call (see `worker.executor.execute_together`); its None for a
# job means "not run: send it again" (the first such one alone).
GROUP_MAX_TASKS = 16
GROUP_MAX_TEXT_CHARS = 4000
# Loops run for as long as they say, whatever their size: a circuit that may hold one goes alone
# from the start (the child would find it out only after parsing the whole group).
_CONTROL_FLOW = re.compile(r"\b(?:for|while|if)\b")
CHECK_SECONDS = 0.05  # how often a running job asks the worker whether to stop, skip or write
START_TIMEOUT_SECONDS = 300.0
FORK_SERVER_GONE_SECONDS = 5.0  # how long a dead fork server may take to be replaced
# The exit code multiprocessing gives a child whose fork server is gone (it cannot read the real
# one); the child itself never exits with it.
FORK_SERVER_GONE_EXIT_CODE = 255
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


def die_with_parent() -> None:
    """SIGKILL this process when its parent dies. If the worker is killed with SIGKILL, its fork
    server goes with it, and the simulation with that, instead of an orphan burning a core for a
    task that is already being retried elsewhere."""
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
    die_with_parent()
    if FORK_SERVER_PRELOAD not in sys.modules:
        # multiprocessing's fork server passes over a preload it cannot import; without it the fork
        # server would neither ignore stop signals nor die with the worker.
        print(f"ConfigError: the simulation fork server could not import {FORK_SERVER_PRELOAD}", file=sys.stderr)
        os._exit(2)
    _log_one_line_per_event()
    from worker import executor

    simulator = executor.Simulator(max_memory_mb, threads, limits)
    warm = executor.execute(simulator, executor.WARM_UP_CIRCUIT, 16, 0)
    freeze_what_is_loaded()
    _limit_address_space(max_memory_mb)
    conn.send((READY, warm))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            message = None
        if message is None:
            # Nothing here needs tidying, and finalizing an interpreter that holds Qiskit and Aer
            # (modules, Aer's threads) took 0.15-0.2 s of every worker's shutdown.
            logging.shutdown()
            os._exit(0)
        pairs, simulator.threads = message
        if len(pairs) == 1:
            index, job = pairs[0]
            conn.send([(index, executor.execute(simulator, job.circuit, job.shots, job.seed, job.options, job.owner))])
        else:
            texts, owners = [job.circuit for _, job in pairs], [job.owner for _, job in pairs]
            answers = executor.execute_together(simulator, texts, pairs[0][1].shots, owners)
            conn.send([(index, answer) for (index, _), answer in zip(pairs, answers, strict=True)])


class SimulationUnavailable(RuntimeError):
    """No simulation process can be started here: the worker stops (its claims' leases lapse and
    other workers take them)."""


class SimulationChild:
    """Owns one child process; restarts it after a crash, a timeout or an abort."""

    def __init__(self, max_memory_mb: int, threads: int = 0, limits: CircuitLimits | None = None) -> None:
        self.max_memory_mb = max_memory_mb
        self.threads = threads
        self.limits = limits or CircuitLimits()
        self.max_rss_bytes = (max_memory_mb + RSS_MARGIN_MB) * MIB
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload([FORK_SERVER_PRELOAD])
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
        self._launch(process)
        child_conn.close()
        self._process, self._conn = process, parent_conn
        ready = multiprocessing.connection.wait([parent_conn, process.sentinel], START_TIMEOUT_SECONDS)
        answer = None
        if parent_conn in ready:
            with contextlib.suppress(EOFError, OSError):  # it exited as it started
                answer = parent_conn.recv()
        if answer is None:
            self.kill()
            raise SimulationUnavailable("the simulation process did not start (its error is in the log above)")
        message, warm = answer
        if message != READY or warm.outcome is not Outcome.COUNTS:
            self.kill()
            raise SimulationUnavailable(f"the simulation process failed its warm-up run: {warm.error}")
        logger.info("simulation process %d ready", process.pid)

    @staticmethod
    def _launch(process: Any) -> None:
        """Fork the child from the fork server. A fork server that died (killed, or by the
        out-of-memory killer) is started again once the kernel has made it a zombie, which may
        come a moment after the death of its children: until then it refuses the connection."""
        deadline = time.monotonic() + FORK_SERVER_GONE_SECONDS
        while True:
            try:
                process.start()
                return
            except (ConnectionRefusedError, FileNotFoundError, EOFError) as error:
                if time.monotonic() > deadline:
                    raise SimulationUnavailable(f"the simulation fork server does not answer: {error}") from None
                time.sleep(0.01)
            except OSError as error:  # e.g. a TMPDIR too deep for a socket's address, or not writable
                raise SimulationUnavailable(f"cannot start the simulation fork server: {error}") from None

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
        """Run the jobs in the child, yielding (index, result) as each ends; never raises for
        anything a circuit does. A job that crashes, hangs, blows its memory or is aborted costs
        the child (a new one runs the rest); a job the worker skips before it started answers
        ABORTED without running. Small plain jobs run in groups; a group that crashes, hangs or
        blows its memory is run again one job at a time, so each job ends as it would alone, and
        the jobs of a group stopped for one of them are sent again."""
        run = _Run(jobs, threads, timeout, control)
        running: list[int] = []
        while running or run.unsent:
            for index in [i for i in run.unsent if control.should_skip(i)]:
                run.unsent.remove(index)
                yield index, RunResult(Outcome.ABORTED)
            if not running:
                running = self._start_next(run)
                continue
            answers = self._answer(running, run)
            if answers is None:
                continue
            run.send_again([index for index, result in answers if result is None])
            running = []
            if self._process is not None:  # the child waits: give it the next jobs before these are recorded
                running = self._start_next(run)
            for index, result in answers:
                if result is not None:
                    yield index, result

    def _start_next(self, run: _Run) -> list[int]:
        """Send the child the next jobs not to be skipped, starting a child if needed; their indexes."""
        group = run.next_group()
        if not group:
            return []
        if self._process is None or not self._process.is_alive():
            self.kill()
            self.start()
        assert self._conn is not None
        try:
            self._conn.send(([(index, run.jobs[index]) for index in group], run.threads))
        except (BrokenPipeError, OSError):
            self.kill()  # the child is gone; the jobs were never started: the next call starts another
            return []
        for index in group:
            run.unsent.remove(index)
        self._deadline = time.monotonic() + run.timeout
        for index in group:
            run.control.started(index, len(group))
        return group

    def _answer(self, running: list[int], run: _Run) -> list[tuple[int, RunResult | None]] | None:
        """Wait a moment for the running jobs: their answers, or why they were stopped (None for a
        job to send again); None if they still run."""
        assert self._conn is not None and self._process is not None
        deadline = self._deadline
        wait_for = min(MEMORY_CHECK_SECONDS, max(0.0, deadline - time.monotonic()))
        ready = multiprocessing.connection.wait([self._conn, self._process.sentinel], wait_for)
        if self._conn in ready:
            try:
                answers: list[tuple[int, RunResult | None]] = self._conn.recv()
            except (EOFError, OSError):
                return run.stopped(running, self._crashed())
            if any(result is not None and result.memory_exceeded for _, result in answers):
                self.kill()  # a MemoryError may have left the interpreter in a poor state
            return answers
        if ready:  # the sentinel alone: the child died without answering
            return run.stopped(running, self._crashed())
        if self._resident_bytes() > self.max_rss_bytes:
            logger.warning(
                "simulation process %s passed WORKER_MAX_MEMORY_MB=%d plus %d MiB; stopping it",
                self.pid,
                self.max_memory_mb,
                RSS_MARGIN_MB,
            )
            self.kill()
            return run.stopped(running, RunResult(Outcome.ERROR, error=memory_limit_error(self.max_memory_mb)))
        now = time.monotonic()
        if now >= deadline:
            self.kill()
            return run.stopped(running, RunResult(Outcome.TIMEOUT))
        if now >= self._next_check:
            self._next_check = now + CHECK_SECONDS
            run.control.tick()
            aborted = [index for index in running if run.control.should_abort(index)]
            if aborted:
                self.kill()
                return [(index, RunResult(Outcome.ABORTED) if index in aborted else None) for index in running]
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
        elif code == FORK_SERVER_GONE_EXIT_CODE:
            why = "died with the fork server it came from (killed, often by the kernel's out-of-memory killer)"
        else:
            why = f"exited with code {code}"
        return RunResult(
            Outcome.CRASHED,
            error=f"SimulationCrashed: the simulation process {why} while running this circuit; "
            "the worker has started a new one",
        )


class _Run:
    """The jobs of one `run_batch` call: which are still to send, and which must go alone."""

    def __init__(self, jobs: list[SimulationJob], threads: int, timeout: float, control: RunControl) -> None:
        self.jobs, self.threads, self.timeout, self.control = jobs, threads, timeout, control
        self.unsent = collections.deque(range(len(jobs)))
        self.alone: set[int] = set()  # jobs a group did not finish: too big for one, or the group failed

    def next_group(self) -> list[int]:
        """The first job not to be skipped and, if it is a small plain one, those like it right after
        it (jobs to be skipped aside), so that jobs still start in the order they were claimed."""
        first = next((i for i in self.unsent if not self.control.should_skip(i)), None)
        if first is None or not self._groupable(first):
            return [] if first is None else [first]
        shots = self.jobs[first].shots
        group: list[int] = []
        for index in itertools.islice(self.unsent, self.unsent.index(first), None):
            if self.control.should_skip(index):
                continue
            if len(group) == GROUP_MAX_TASKS or self.jobs[index].shots != shots or not self._groupable(index):
                break
            group.append(index)
        return group

    def _groupable(self, index: int) -> bool:
        job = self.jobs[index]
        return (
            index not in self.alone
            and job.seed is None
            and not job.options
            and len(job.circuit) <= GROUP_MAX_TEXT_CHARS
            and not _CONTROL_FLOW.search(job.circuit)
        )

    def stopped(self, running: list[int], result: RunResult) -> list[tuple[int, RunResult | None]]:
        """A job that ran alone ends with result; a group's jobs are each sent again, alone, so the
        one that crashed, hung or blew the memory ends as it would have alone."""
        if len(running) == 1:
            return [(running[0], result)]
        self.alone.update(running)
        return [(index, None) for index in running]

    def send_again(self, indexes: list[int]) -> None:
        """Jobs a group did not finish go first, in order, the first of them alone: it was too big
        for the group, or would have made it too long."""
        self.alone.update(indexes[:1])
        self.unsent.extendleft(reversed(indexes))
