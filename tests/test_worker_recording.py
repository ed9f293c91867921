"""What the worker records for each outcome of a run: a real store, the simulation swapped out.

The simulation child is replaced by a stand-in that returns scripted outcomes (rq's SimpleWorker
idea), so every branch of the recording logic runs in milliseconds; the real child, its crashes
and signals are covered by test_crash.py.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.config import Settings
from shared.errors import ConnectionLost
from shared.models import Claim, Finish, NewTask, RunDetails, TaskStatus
from shared.sqlite_store import SqliteStore
from shared.store import DATABASE_CLOCK
from worker import worker as worker_module
from worker.results import Outcome, RunControl, RunResult, SimulationJob
from worker.worker import Worker

pytestmark = pytest.mark.database_independent

Script = Callable[[Worker, Callable[[], bool]], RunResult]


class StandIn:
    """A simulation that runs `script` instead of a circuit."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.worker: Worker | None = None
        self.runs = 0
        self.jobs: list[SimulationJob] = []

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def run_batch(
        self, jobs: list[SimulationJob], threads: int, timeout: float, control: RunControl
    ) -> Iterator[tuple[int, RunResult]]:
        assert self.worker is not None
        self.jobs += jobs
        for index in range(len(jobs)):
            if control.should_skip(index):
                yield index, RunResult(Outcome.ABORTED)
                continue
            control.started(index)
            self.runs += 1
            yield index, self.script(self.worker, functools.partial(control.should_abort, index))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(str(tmp_path / "tasks.db"))
    store.initialize()
    yield store
    store.close()


def work(store: SqliteStore, script: Script, owner: str = "", **settings: Any) -> Worker:
    """Submit one task (of `owner`) and let a burst worker with the stand-in handle it."""
    store.create_task("t1", NewTask("OPENQASM 3.0;", 100, 7, owner=owner), time.time())
    values: dict[str, Any] = {"lease_seconds": 0.3, "shutdown_grace_seconds": 0, **settings}
    standin = StandIn(script)
    worker = Worker(Settings(_env_file=None, **values), store, "w1", child=standin)
    standin.worker = worker
    worker.run(burst=True)
    assert standin.runs == 1
    # run() closes the store it was given; reopen it to read what was recorded.
    store.initialize()
    return worker


def wait_until(should_abort: Callable[[], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not should_abort():
        assert time.monotonic() < deadline, "the worker never asked the simulation to stop"
        time.sleep(0.01)


def test_the_simulation_gets_each_task_with_its_owner(store: SqliteStore) -> None:
    """What the simulation keeps of a circuit is its owner's alone (worker.circuit_cache): the job
    it gets names the key that submitted the task."""
    standin = work(store, lambda w, abort: RunResult(Outcome.COUNTS, counts={"0": 100}), owner="alice").child
    assert isinstance(standin, StandIn)
    assert [(job.circuit, job.owner) for job in standin.jobs] == [("OPENQASM 3.0;", "alice")]


def test_counts_complete_the_task_with_their_details(store: SqliteStore) -> None:
    details = RunDetails(num_qubits=2, depth=3, duration_ms=1.5, parse_ms=0.2, transpile_ms=0.0)
    work(store, lambda w, abort: RunResult(Outcome.COUNTS, counts={"00": 60, "11": 40}, details=details))
    task = store.get_task("t1")
    assert task is not None and task.status is TaskStatus.COMPLETED
    assert task.result == {"00": 60, "11": 40} and task.attempts == 1
    assert (task.num_qubits, task.depth, task.duration_ms) == (2, 3, 1.5)


def test_an_error_fails_the_task_with_its_line(store: SqliteStore) -> None:
    work(store, lambda w, abort: RunResult(Outcome.ERROR, error="QASM3ParsingError: line 3:0 missing ';'"))
    task = store.get_task("t1")
    assert task is not None and task.status is TaskStatus.FAILED
    assert task.error == "QASM3ParsingError: line 3:0 missing ';'"


@pytest.mark.parametrize(
    ("outcome", "error"),
    [
        (Outcome.TIMEOUT, "TimeoutError: the simulation ran longer than TASK_TIMEOUT_SECONDS=9 s and was stopped"),
        (
            Outcome.CRASHED,
            "SimulationCrashed: the simulation process was killed by SIGKILL while running this circuit",
        ),
    ],
)
def test_a_timeout_or_crash_fails_the_task_naming_why(store: SqliteStore, outcome: Outcome, error: str) -> None:
    given = error if outcome is Outcome.CRASHED else ""
    work(store, lambda w, abort: RunResult(outcome, error=given), task_timeout_seconds=9)
    task = store.get_task("t1")
    assert task is not None and task.status is TaskStatus.FAILED and task.error == error


def test_a_cancel_request_stops_the_run_and_cancels_the_task(store: SqliteStore) -> None:
    def cancelled_meanwhile(worker: Worker, should_abort: Callable[[], bool]) -> RunResult:
        store.cancel("t1", time.time())  # what POST /tasks/{id}/cancel does while it runs
        wait_until(should_abort)  # the lease keeper's next renewal sees the request
        return RunResult(Outcome.ABORTED)

    work(store, cancelled_meanwhile)
    task = store.get_task("t1")
    assert task is not None and task.status is TaskStatus.CANCELLED


def test_a_shutdown_past_its_grace_returns_the_task_without_spending_an_attempt(store: SqliteStore) -> None:
    def stopped_meanwhile(worker: Worker, should_abort: Callable[[], bool]) -> RunResult:
        worker.request_stop()  # SIGTERM, with SHUTDOWN_GRACE_SECONDS=0
        wait_until(should_abort)
        return RunResult(Outcome.ABORTED)

    work(store, stopped_meanwhile)
    task = store.get_task("t1")
    assert task is not None and task.status is TaskStatus.SUBMITTED
    claim = store.claim_next("w2", DATABASE_CLOCK, 30)
    assert claim is not None and claim.attempt == 1  # the hand-back cost no attempt


def test_a_result_after_the_lease_was_taken_over_is_discarded(
    store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    def taken_over(worker: Worker, should_abort: Callable[[], bool]) -> RunResult:
        # This worker stalled past its lease: another worker requeued and claimed the task.
        store.recover_expired(now=time.time() + 3600, max_attempts=5)
        assert store.claim_next("w2", DATABASE_CLOCK, 30) is not None
        return RunResult(Outcome.COUNTS, counts={"0": 100})

    work(store, taken_over)
    task = store.get_task("t1")
    assert task is not None and task.status is TaskStatus.PENDING and task.worker_id == "w2"
    assert task.result is None
    assert "task t1: result discarded, this worker lost its lease to another worker" in caplog.text


def test_results_in_hand_are_written_when_the_simulation_cannot_go_on(store: SqliteStore) -> None:
    class BrokenAfterOne(StandIn):
        def run_batch(
            self, jobs: list[SimulationJob], threads: int, timeout: float, control: RunControl
        ) -> Iterator[tuple[int, RunResult]]:
            control.started(0)
            yield 0, RunResult(Outcome.COUNTS, counts={"0": 100})
            raise RuntimeError("the simulation process did not start")

    for task_id in ("t1", "t2"):
        store.create_task(task_id, NewTask("OPENQASM 3.0;", 100), time.time())
    standin = BrokenAfterOne(lambda w, abort: RunResult(Outcome.ERROR))
    worker = Worker(Settings(_env_file=None, lease_seconds=0.3), store, "w1", child=standin)
    worker.claims.task_seconds = 0.001  # quick tasks: both are claimed at once
    with pytest.raises(RuntimeError):
        worker.run(burst=True)
    store.initialize()
    first, second = store.get_task("t1"), store.get_task("t2")
    assert first is not None and first.status is TaskStatus.COMPLETED and first.result == {"0": 100}
    assert second is not None and second.status is TaskStatus.PENDING  # left to its lease, not lost


class AnswerLostOnce(SqliteStore):
    """The store, but the answer to the first claim or the first write of results is lost after it
    was committed: what a worker sees when its PostgreSQL connection is cut in between."""

    def __init__(self, path: str, lose: str) -> None:
        super().__init__(path)
        self.lose = lose

    def _lost(self, what: str) -> None:
        if self.lose == what:
            self.lose = ""
            raise ConnectionLost("lost the database connection: terminating connection due to administrator command")

    def claim(self, worker_id: str, now: float | None, lease_seconds: float, limit: int) -> list[Claim]:
        claims = super().claim(worker_id, now, lease_seconds, limit)
        self._lost("claim")
        return claims

    def finish(self, worker_id: str, finishes: list[Finish]) -> list[bool]:
        written = super().finish(worker_id, finishes)
        self._lost("finish")
        return written


def test_a_claim_whose_answer_was_lost_is_put_back_without_spending_an_attempt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    store = AnswerLostOnce(str(tmp_path / "tasks.db"), lose="claim")
    store.initialize()
    work(store, lambda w, abort: RunResult(Outcome.COUNTS, counts={"0": 100}))
    task = store.get_task("t1")
    assert store.lose == "", "the claim's answer was never lost"
    assert task is not None and task.status is TaskStatus.COMPLETED and task.attempts == 1
    assert "task t1 submitted: returned to the queue, its claim's answer was lost" in caplog.text


def test_results_whose_write_was_committed_unseen_are_reported_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    store = AnswerLostOnce(str(tmp_path / "tasks.db"), lose="finish")
    store.initialize()
    work(store, lambda w, abort: RunResult(Outcome.COUNTS, counts={"0": 100}))
    task = store.get_task("t1")
    assert store.lose == "", "the write's answer was never lost"
    assert task is not None and task.status is TaskStatus.COMPLETED and task.result == {"0": 100}
    assert "database write failed, retrying at once: lost the database connection" in caplog.text
    assert "result discarded" not in caplog.text
    assert "task t1 completed" in caplog.text


@pytest.mark.parametrize("when", ["during the wait", "as the wait begins"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_ends_an_idle_wait_at_once(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch, signum: signal.Signals, when: str
) -> None:
    """An idle worker waiting 60 s for work (the real store's doorbell) stops as soon as the
    signal comes, and cleanly: sent to the process while it waits (any of its threads may take
    it), or just before its select() begins, after the stop flag was last looked at."""
    monkeypatch.setattr(worker_module, "MAX_IDLE_WAIT_SECONDS", 60.0)
    worker = Worker(Settings(_env_file=None, poll_interval_seconds=60), store, "w1", child=StandIn(never_runs))
    handlers_before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    waiting = threading.Event()
    wait_for_work = store.wait_for_work

    def waits(timeout: float, interrupt: int | None = None) -> None:
        waiting.set()
        if when == "as the wait begins":
            # The race a flag alone loses: the handler has run, and the select() starts after it.
            signal.pthread_kill(threading.get_ident(), signum)
            assert worker._stopping.is_set()
        wait_for_work(timeout, interrupt)

    monkeypatch.setattr(store, "wait_for_work", waits)

    def send() -> None:
        if when == "during the wait" and waiting.wait(10):
            os.kill(os.getpid(), signum)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        with worker.signals_handled():
            started = time.monotonic()
            assert worker.run() == 0
            assert time.monotonic() - started < 30, "the worker waited out its idle wait"
    finally:
        sender.join()
    assert waiting.is_set()
    assert {s: signal.getsignal(s) for s in handlers_before} == handlers_before


def never_runs(worker: Worker, should_abort: Callable[[], bool]) -> RunResult:
    raise AssertionError("the queue is empty: nothing may run")
