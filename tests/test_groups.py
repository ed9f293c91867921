"""Small plain tasks run together in one Aer call: the same answers as alone, each its own
randomness and errors, and a group that fails or is stopped ends each task as it would alone.

In-process for the executor (real Aer); a real simulation child for the worker's side of groups.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from tests.services import BELL_QASM3, slow_circuit
from worker import executor
from worker.results import Outcome, RunResult, SimulationJob
from worker.sandbox import GROUP_MAX_TASKS, SimulationChild

pytestmark = pytest.mark.database_independent

HEADER = 'OPENQASM 3.0;\ninclude "stdgates.inc";\n'
SIMULATOR = executor.Simulator(max_memory_mb=4096, threads=1)
# Outcomes that do not depend on chance, so a group's answer can be compared with a run alone.
CERTAIN = [
    HEADER + "qubit[2] q;\nbit[2] c;\nx q[0];\nc = measure q;\n",
    HEADER + "qubit[3] q;\nbit a;\nbit[2] r;\nx q[1];\nx q[2];\na = measure q[0];\nr[0] = measure q[1];\n"
    "r[1] = measure q[2];\n",
    'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[3];\ncreg c[3];\nx q[2];\ncx q[2], q[0];\nmeasure q -> c;\n',
    HEADER + "gate flip a { x a; }\nqubit[1] q;\nbit[1] c;\nflip q[0];\nc = measure q;\n",
]
BROKEN = HEADER + "qubit[2] q;\nbit[2] c;\nfoo q[0];\nc = measure q;\n"
WIDE = HEADER + f"qubit[{executor.GROUP_MAX_QUBITS + 2}] q;\nbit[2] c;\nh q[0];\nc[0] = measure q[0];\n"


def alone(text: str, shots: int) -> RunResult:
    return executor.execute(SIMULATOR, text, shots, None)


def test_a_group_gives_what_each_circuit_gives_alone() -> None:
    answers = executor.execute_together(SIMULATOR, CERTAIN, 300)
    for text, answer in zip(CERTAIN, answers, strict=True):
        single = alone(text, 300)
        assert answer is not None and answer.outcome is Outcome.COUNTS, answer
        assert single.counts is not None and sum(single.counts.values()) == 300
        assert answer.counts == single.counts
        assert answer.details.num_qubits == single.details.num_qubits
        assert answer.details.diagram == single.details.diagram
        assert answer.details.duration_ms is not None and answer.details.duration_ms > 0


def test_each_task_of_a_group_gets_its_own_randomness() -> None:
    answers = executor.execute_together(SIMULATOR, [BELL_QASM3] * 12, 1024)
    counts = [answer.counts for answer in answers if answer is not None and answer.counts is not None]
    assert len(counts) == 12
    assert all(set(c) == {"00", "11"} and sum(c.values()) == 1024 for c in counts)
    assert len({c["00"] for c in counts}) > 1  # twelve identical draws would mean one shared seed


def test_a_failing_circuit_gets_its_own_error_and_the_rest_run() -> None:
    answers = executor.execute_together(SIMULATOR, [CERTAIN[0], BROKEN, CERTAIN[1]], 100)
    assert [a.outcome if a else None for a in answers] == [Outcome.COUNTS, Outcome.ERROR, Outcome.COUNTS]
    assert answers[1] is not None and answers[1].error == alone(BROKEN, 100).error
    assert answers[1].error.startswith("QASM3ImporterError: ")


def test_a_circuit_too_big_for_a_group_ends_it_unrun() -> None:
    answers = executor.execute_together(SIMULATOR, [CERTAIN[0], WIDE, CERTAIN[1]], 100)
    assert answers[0] is not None and answers[0].outcome is Outcome.COUNTS
    assert answers[1:] == [None, None]  # the worker sends them again, the wide one alone, in order


def test_a_group_stops_at_its_work_budget() -> None:
    shots = executor.GROUP_MAX_WORK // 4 // 3  # Bell is four operations: three fit, the fourth does not
    answers = executor.execute_together(SIMULATOR, [BELL_QASM3] * 5, shots)
    assert [a is not None for a in answers] == [True, True, True, False, False]


class Control:
    """The worker's side of a run, as the tests script it."""

    def __init__(self, kill_group: SimulationChild | None = None, abort: int | None = None) -> None:
        self.starts: list[tuple[int, int]] = []  # (index, together)
        self.kill_group, self.abort = kill_group, abort

    def started(self, index: int, together: int = 1) -> None:
        self.starts.append((index, together))
        if self.kill_group is not None and together > 1 and self.kill_group.pid is not None:
            os.kill(self.kill_group.pid, signal.SIGKILL)  # the child dies under its first group
            self.kill_group = None

    def should_abort(self, index: int) -> bool:
        return index == self.abort and any(i == index and n > 1 for i, n in self.starts)

    def should_skip(self, index: int) -> bool:
        return False

    def tick(self) -> None:
        pass


@pytest.fixture(scope="module")
def child() -> Iterator[SimulationChild]:
    child = SimulationChild(max_memory_mb=2048, threads=1)
    child.start()
    yield child
    child.stop()


def run(child: SimulationChild, jobs: list[SimulationJob], control: Control) -> dict[int, RunResult]:
    answers = dict(child.run_batch(jobs, threads=1, timeout=120, control=control))
    assert sorted(answers) == list(range(len(jobs)))  # each job answered once
    return answers


def test_plain_small_tasks_go_together_and_the_rest_alone_in_claim_order(child: SimulationChild) -> None:
    loop = slow_circuit(10)
    jobs = (
        [SimulationJob(BELL_QASM3, 200)] * 20
        + [SimulationJob(loop, 200), SimulationJob(BELL_QASM3, 200, seed=3), SimulationJob(WIDE, 200)]
        + [SimulationJob(BELL_QASM3, 200)] * 3
    )
    control = Control()
    answers = run(child, jobs, control)
    assert all(a.outcome is Outcome.COUNTS and sum((a.counts or {}).values()) == 200 for a in answers.values())
    together: dict[int, int] = {}
    for index, n in control.starts:
        together[index] = n  # the last start of each job is the one that ran
    assert [together[i] for i in range(20)] == [GROUP_MAX_TASKS] * GROUP_MAX_TASKS + [4] * 4
    assert together[20] == together[21] == 1  # a loop, and a seed, go alone from the start
    assert together[22] == 1 and together[23] == together[24] == together[25] == 3  # sent again after the wide one
    assert answers[21].counts == executor.execute(SIMULATOR, BELL_QASM3, 200, 3).counts
    first_starts = list(dict.fromkeys(index for index, _ in control.starts))
    assert first_starts == sorted(first_starts)  # tasks start in the order they were claimed


def test_a_group_whose_child_dies_runs_again_task_by_task(child: SimulationChild) -> None:
    jobs = [SimulationJob(CERTAIN[0], 100)] * 4
    control = Control(kill_group=child)
    answers = run(child, jobs, control)
    assert control.starts[:4] == [(i, 4) for i in range(4)]
    assert control.starts[4:] == [(i, 1) for i in range(4)]  # each alone, as if it had been alone
    assert all(a.outcome is Outcome.COUNTS and a.counts == {"01": 100} for a in answers.values())


def test_stopping_one_task_of_a_group_stops_only_that_one(child: SimulationChild) -> None:
    # A measurement mid-circuit makes Aer simulate every shot: four of these are a long group.
    text = (
        HEADER
        + "qubit[2] q;\nbit[2] c;\nh q[0];\ncx q[0], q[1];\nc[0] = measure q[0];\nx q[1];\nc[1] = measure q[1];\n"
    )
    shots = executor.GROUP_MAX_WORK // 5 // 4  # five operations a task: four tasks fill the group
    jobs = [SimulationJob(text, shots)] * 4
    control = Control(abort=2)
    answers = run(child, jobs, control)
    assert control.starts[:4] == [(i, 4) for i in range(4)]
    assert answers[2].outcome is Outcome.ABORTED
    for i in (0, 1, 3):
        assert answers[i].outcome is Outcome.COUNTS and set(answers[i].counts or {}) == {"10", "01"}
        assert sum((answers[i].counts or {}).values()) == shots
