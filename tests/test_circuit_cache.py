"""The simulation child keeps the last circuits it parsed (worker.circuit_cache): a text sent again,
as an optimizer loop sends its ansatz with new parameters, is not parsed again, and gives exactly
the answer a first parse gives, whatever the tasks before it asked for.

In-process, real Aer; `parse` is wrapped only to count its calls.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from tests.test_simulation import HEADER
from worker import circuit_cache, executor, parsing, program
from worker.circuit_cache import CircuitCache
from worker.results import Outcome, RunResult

pytestmark = pytest.mark.database_independent

BELL = HEADER + "qubit[2] q;\nbit[2] c;\nh q[0];\ncx q[0], q[1];\nc = measure q;\n"
ROTATION = HEADER + "input float theta;\nqubit[1] q;\nbit[1] c;\nrx(theta) q[0];\nc = measure q;\n"
# A user-defined gate: the kept circuit is the unrolled one.
DEFINED = HEADER + "gate bell a, b { h a; cx a, b; }\nqubit[2] q;\nbit[2] c;\nbell q[0], q[1];\nc = measure q;\n"
OPAQUE = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nopaque magic a;\nqreg q[1];\ncreg c[1];\nmagic q[0];\nmeasure q -> c;\n'


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The texts the executor parses, in order."""
    seen: list[str] = []

    def counted(text: str) -> Any:
        seen.append(text)
        return parsing.parse(text)

    monkeypatch.setattr(executor, "parse", counted)
    yield seen


def run(
    simulator: executor.Simulator,
    text: str,
    shots: int = 1000,
    seed: int | None = None,
    owner: str = "",
    **options: Any,
) -> RunResult:
    result = executor.execute(simulator, text, shots, seed, options, owner)
    assert result.outcome is Outcome.COUNTS, result.error
    return result


def test_an_optimizer_loop_parses_its_circuit_once(parses: list[str]) -> None:
    """The same text with new parameter values each step: one parse, and each step's own answer."""
    simulator = executor.Simulator(max_memory_mb=1024, threads=1)
    assert run(simulator, ROTATION, parameters={"theta": 0.0}).counts == {"0": 1000}
    assert run(simulator, ROTATION, parameters={"theta": math.pi}).counts == {"1": 1000}
    middle = run(simulator, ROTATION, parameters={"theta": math.pi / 2}).counts
    assert middle is not None and 400 < middle.get("1", 0) < 600
    assert parses == [ROTATION]
    assert run(simulator, BELL).counts is not None
    assert parses == [ROTATION, BELL]


def test_what_a_task_asks_for_does_not_reach_the_next(parses: list[str]) -> None:
    """Observables (a saved state vector), memory, a seed (Aer's own sampling), a method and noise,
    one after another on one kept circuit: each answer is what a fresh child gives."""
    simulator = executor.Simulator(max_memory_mb=1024, threads=1)
    fresh = executor.Simulator(max_memory_mb=1024, threads=1)
    tasks: list[dict[str, Any]] = [
        {"observables": ["ZZ", "XX", "ZI"]},
        {"memory": True, "seed": 7},
        {"seed": 7, "method": "stabilizer"},
        {"noise": {"readout": {"p01": 0.0, "p10": 1.0}}, "seed": 3},
        {"observables": ["ZZ"], "noise": {"depolarizing_2q": 0.2}},
        {},
        {"observables": ["XX", "ZI"]},  # the kept state's merged copy, made by the first task
    ]
    for options in tasks:
        seed = options.pop("seed", None)
        kept = run(simulator, BELL, seed=seed, **options)
        again = run(fresh, BELL, seed=seed, **options)
        fresh.circuits = CircuitCache()  # parse afresh every time
        if seed is not None:  # Aer draws both from the same seed
            assert (kept.counts, kept.output) == (again.counts, again.output), options
        else:  # expectation values are exact; shots drawn here differ from run to run
            assert kept.output == again.output, options
            assert kept.counts is not None and sum(kept.counts.values()) == 1000
            assert "noise" in options or set(kept.counts) <= {"00", "11"}
    assert parses.count(BELL) == 1 + len(tasks)  # once for `simulator`, once per task for `fresh`
    kept_circuit = simulator.circuits.get(BELL)
    assert kept_circuit is not None
    assert dict(kept_circuit.prepared.count_ops()) == {"h": 1, "cx": 1, "measure": 2}
    # The circuits derived for expectation values are kept without what a task added to its copy.
    assert set(kept_circuit.derived) == {"state", "merged"}
    assert all(set(c.count_ops()) <= {"h", "u", "cx"} for c in kept_circuit.derived.values())


def test_a_kept_circuit_describes_itself_as_the_first_parse_did(parses: list[str]) -> None:
    """The dashboard's facts (width, depth, drawing) are the same on a hit; an unrolled circuit is
    kept unrolled."""
    simulator = executor.Simulator(max_memory_mb=1024, threads=1)
    first, second = run(simulator, DEFINED), run(simulator, DEFINED)
    assert parses == [DEFINED]
    assert first.details.diagram and first.details.diagram == second.details.diagram
    assert (first.details.num_qubits, first.details.depth) == (second.details.num_qubits, second.details.depth)
    assert second.counts is not None and set(second.counts) <= {"00", "11"}


def test_one_owner_s_circuits_never_answer_for_another(parses: list[str]) -> None:
    """A text is kept for the key that sent it: the same text from another key is parsed again, so
    its task takes the time a first parse takes and tells nothing of what others sent, on its own
    or in a group of small tasks."""
    simulator = executor.Simulator(max_memory_mb=1024, threads=1)
    run(simulator, BELL, owner="alice")
    run(simulator, BELL, owner="alice")
    assert parses == [BELL]
    run(simulator, BELL, owner="bob")
    assert parses == [BELL, BELL]  # not alice's
    answers = executor.execute_together(simulator, [BELL, BELL, BELL], 100, ["bob", "carol", "alice"])
    assert all(answer is not None and answer.outcome is Outcome.COUNTS for answer in answers)
    assert parses == [BELL, BELL, BELL]  # only carol's was new
    assert simulator.circuits.get(BELL, "dave") is None and simulator.circuits.get(BELL, "carol") is not None


def test_a_circuit_that_fails_is_not_kept(parses: list[str]) -> None:
    """Each try of a circuit that cannot run is parsed and refused again, with the same error."""
    simulator = executor.Simulator(max_memory_mb=1024, threads=1)
    errors = {executor.execute(simulator, OPAQUE, 10, None).error for _ in range(2)}
    assert len(errors) == 1 and next(iter(errors)).startswith("OpaqueGate: ")
    assert parses == [OPAQUE, OPAQUE]
    assert simulator.circuits.get(OPAQUE) is None
    # A task refused for its options keeps nothing either, and the next one with the right options runs.
    refused = executor.execute(simulator, ROTATION, 10, None, {"parameters": {"phi": 1.0}})
    assert refused.error.startswith("ParameterError: ")
    assert run(simulator, ROTATION, parameters={"theta": 0.0}).counts == {"0": 1000}


def test_the_least_recently_used_text_goes_first_and_long_texts_are_not_kept() -> None:
    cache = CircuitCache(size=2)
    parsed = {name: parsing.parse(text) for name, text in (("bell", BELL), ("defined", DEFINED))}

    def keep(text: str, circuit: Any) -> None:
        cache.put(text, circuit_cache.Parsed(circuit, circuit, {}, True))

    keep("a", parsed["bell"])
    keep("b", parsed["defined"])
    assert cache.get("a") is not None  # now the most recently used
    keep("c", parsed["bell"])
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None
    long_text = BELL + "// " + "x" * circuit_cache.CACHED_TEXT_CHARS
    keep(long_text, parsed["bell"])
    assert cache.get(long_text) is None


def test_the_same_observables_are_built_once_and_a_wrong_one_is_refused_every_time() -> None:
    """An optimizer loop asks for the same observables at every step: they are built once, and
    each step still gets its own state's values; an observable of the wrong width fails each time."""
    simulator = executor.Simulator(max_memory_mb=1024, threads=1)
    program._operators.cache_clear()
    values = [
        run(simulator, ROTATION, parameters={"theta": theta}, observables=["Z", [["X", 0.5], ["Z", 2.0]]]).output
        for theta in (0.0, math.pi)
    ]
    assert [v["expectation_values"] for v in values] == [pytest.approx([1.0, 2.0]), pytest.approx([-1.0, -2.0])]
    assert program._operators.cache_info().misses == 1
    for _ in range(2):
        refused = executor.execute(simulator, ROTATION, 10, None, {"parameters": {"theta": 0.0}, "observables": ["ZZ"]})
        assert (
            refused.error
            == 'ObservableError: "ZZ" has 2 letters; the circuit has 1 qubits (one letter per qubit, qubit 0 rightmost)'
        )


def test_a_worker_keeps_its_last_8_texts(parses: list[str]) -> None:
    """As the README says: the last 8 texts run are parsed again only after 8 others came since."""
    simulator = executor.Simulator(max_memory_mb=1024, threads=1)
    texts = [BELL + f"// variant {i}\n" for i in range(9)]
    for text in texts[:8]:
        run(simulator, text, shots=1)
    run(simulator, texts[0], shots=1)  # still kept: the 8th text came after it, not a 9th
    assert parses == texts[:8]
    run(simulator, texts[8], shots=1)  # a 9th: the least recently used, texts[1], goes
    run(simulator, texts[1], shots=1)
    assert parses == [*texts[:8], texts[8], texts[1]]
