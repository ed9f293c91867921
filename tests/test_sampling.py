"""Shots drawn from exact probabilities (worker.sampling): the keys Aer gives, the distribution the
state gives, memory that agrees with counts, and Aer left to do what this cannot.

In-process, real Aer: each circuit without a seed is compared with the same circuit run by Aer.
"""

from __future__ import annotations

import math

import pytest

from tests.test_simulation import HEADER, LAYOUTS
from worker import executor, parsing, sampling
from worker.executor import Job
from worker.results import Outcome

pytestmark = pytest.mark.database_independent

SIMULATOR = executor.Simulator(max_memory_mb=4096, threads=1)

SHAPES = {
    **{name: text for name, (text, _) in LAYOUTS.items()},
    "two registers": HEADER + "qubit[3] q;\nbit[2] a;\nbit[1] b;\nh q[0];\ncx q[0], q[2];\nx q[1];\n"
    "a[0] = measure q[0];\na[1] = measure q[1];\nb[0] = measure q[2];\n",
    "a clbit written twice": HEADER + "qubit[2] q;\nbit[2] c;\nh q[0];\nx q[1];\nc[0] = measure q[0];\n"
    "c[0] = measure q[1];\nc[1] = measure q[0];\n",
    "an unmeasured clbit and qubit": HEADER + "qubit[3] q;\nbit[3] c;\nh q[2];\nx q[0];\nc[2] = measure q[2];\n",
    "OpenQASM 2 with a barrier": 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\nh q[0];\nbarrier q;\n'
    "cx q[0], q[1];\nbarrier q;\nmeasure q -> c;\n",
}


def counts(text: str, shots: int, seed: int | None) -> dict[str, int]:
    result = executor.execute(SIMULATOR, text, shots, seed)
    assert result.outcome is Outcome.COUNTS and result.counts is not None, result.error
    assert sum(result.counts.values()) == shots
    return result.counts


@pytest.mark.parametrize("shape", list(SHAPES))
def test_drawn_shots_have_the_keys_aer_gives(shape: str) -> None:
    text = SHAPES[shape]
    assert executor.Simulator.sampled(parsing.parse(text), None, Job()) is not None  # drawn here
    drawn, aers = counts(text, 4000, None), counts(text, 4000, 11)  # with a seed, Aer samples
    assert set(drawn) == set(aers)  # every outcome of these has a probability of 1/8 or more


def test_drawn_shots_follow_the_states_probabilities() -> None:
    theta = 1.1
    text = HEADER + f"qubit[1] q;\nbit[1] c;\nrx({theta}) q[0];\nc[0] = measure q[0];\n"
    shots, p = 20_000, math.sin(theta / 2) ** 2
    ones = counts(text, shots, None)["1"]
    assert abs(ones - shots * p) < 5 * math.sqrt(shots * p * (1 - p))


def test_drawn_memory_agrees_with_the_counts() -> None:
    text = SHAPES["mixed"]
    result = executor.execute(SIMULATOR, text, 500, None, {"memory": True})
    assert result.counts is not None and len(result.output["memory"]) == 500
    tally: dict[str, int] = {}
    for key in result.output["memory"]:
        tally[key] = tally.get(key, 0) + 1
    assert tally == result.counts


def test_a_sweep_without_a_seed_draws_each_point_from_its_own_state() -> None:
    text = HEADER + "input float theta;\nqubit[1] q;\nbit[1] c;\nrx(theta) q[0];\nc[0] = measure q[0];\n"
    result = executor.execute(SIMULATOR, text, 300, None, {"parameters": {"theta": [0.0, math.pi, 0.0]}})
    assert [point["counts"] for point in result.output["results"]] == [{"0": 300}, {"1": 300}, {"0": 300}]


@pytest.mark.parametrize(
    "body",
    [
        "h q[0];\nc[0] = measure q[0];\nx q[1];\nc[1] = measure q[1];\n",  # a measurement mid-circuit
        "h q[0];\nreset q[0];\nc = measure q;\n",
        "h q[0];\nc[0] = measure q[0];\nif (c[0]) x q[1];\nc[1] = measure q[1];\n",
    ],
)
def test_aer_samples_what_is_not_measured_only_at_the_end(body: str) -> None:
    circuit = parsing.parse(HEADER + "qubit[2] q;\nbit[2] c;\n" + body)
    assert sampling.final_measurements(circuit) is None


def test_a_seed_noise_or_a_method_leaves_sampling_to_aer() -> None:
    bell = parsing.parse(SHAPES["OpenQASM 2 with a barrier"])
    assert executor.Simulator.sampled(bell, 7, Job()) is None
    assert executor.Simulator.sampled(bell, None, Job(method="stabilizer")) is None
    assert executor.Simulator.sampled(bell, None, Job(noise=object())) is None
    wide = parsing.parse(
        HEADER + f"qubit[{sampling.MAX_MEASURED + 1}] q;\nbit[{sampling.MAX_MEASURED + 1}] c;\nc = measure q;\n"
    )
    assert sampling.final_measurements(wide) is None


# Expectation values come from the state before the final measurements, whichever way it is cut.
STATE_SHAPES = {
    "measured last": HEADER + "qubit[2] q;\nbit[2] c;\nh q[0];\nx q[1];\nbarrier q;\nc = measure q;\n",
    "measured early": HEADER + "qubit[2] q;\nbit[2] c;\nh q[0];\nc[0] = measure q[0];\nx q[1];\nc[1] = measure q[1];\n",
    "not measured": HEADER + "qubit[2] q;\nh q[0];\nx q[1];\n",
}


@pytest.mark.parametrize("shape", list(STATE_SHAPES))
def test_the_state_left_for_expectation_values_is_the_gates_in_order(shape: str) -> None:
    """Cut by a copy when the measurements come last, by Qiskit otherwise: h then x either way,
    no measurement (a kept one would collapse the state)."""
    circuit = parsing.parse(STATE_SHAPES[shape])
    state = sampling.without_final_measurements(circuit)
    gates = [(i.operation.name, [state.find_bit(q).index for q in i.qubits]) for i in state.data]
    assert [gate for gate in gates if gate[0] != "barrier"] == [("h", [0]), ("x", [1])]


@pytest.mark.parametrize("shape", list(STATE_SHAPES))
@pytest.mark.parametrize("method", ["automatic", "density_matrix"])
def test_expectation_values_are_exact_from_the_state_and_from_aer(shape: str, method: str) -> None:
    # "IX" is 1 only if the measurement of q[0] (in the middle, or last) is not simulated; the
    # automatic method reads the state vector back, density_matrix asks Aer for the values.
    options = {"observables": ["IX", "ZI", [["ZX", 0.5], ["II", 2.0]]], "method": method}
    result = executor.execute(SIMULATOR, STATE_SHAPES[shape], 100, None, options)
    assert result.outcome is Outcome.COUNTS, result.error
    assert result.output["expectation_values"] == pytest.approx([1.0, -1.0, 1.5], abs=1e-12)


# A circuit that collapses its state before the end has no single state to take values on.
COLLAPSING = {
    "a measurement other gates follow": (
        HEADER + "qubit[2] q;\nbit[2] c;\nh q[0];\nc[0] = measure q[0];\nh q[0];\nc[1] = measure q[1];\n",
        "it measures q[0] before its last operations",
    ),
    "a measurement an if reads": (
        HEADER + "qubit[2] q;\nbit[2] c;\nh q[0];\nc[0] = measure q[0];\nif (c[0]) { x q[1]; }\n",
        "it measures q[0] before its last operations",
    ),
    "a reset after a gate": (HEADER + "qubit[2] q;\nh q[0];\nreset q[0];\n", "it resets q[0] after operating on it"),
    "a measurement in a loop": (
        HEADER + "qubit[2] q;\nbit[1] c;\nh q[0];\nfor int i in [0:1] { c[0] = measure q[0]; }\nx q[1];\n",
        "a for-loop block in it measures or resets",
    ),
}


@pytest.mark.parametrize("shape", list(COLLAPSING))
def test_observables_of_a_circuit_that_collapses_before_its_end_fail_saying_why(shape: str) -> None:
    # Before, the feed-forward circuit gave ZZ = 0 (its measurement dropped, the `if` never taken)
    # and the others one random branch's value.
    text, reason = COLLAPSING[shape]
    result = executor.execute(SIMULATOR, text, 100, None, {"observables": ["ZZ"]})
    assert result.outcome is Outcome.ERROR
    assert result.error == (
        "ObservableError: expectation values are taken on the state before the final measurements, and this "
        f"circuit has no single one: {reason}; measure only at the end, or ask for counts instead"
    )
    if "measure" in text:  # counts, as the message suggests, still come
        assert executor.execute(SIMULATOR, text, 100, None).outcome is Outcome.COUNTS


def test_a_reset_before_any_gate_keeps_the_state_single() -> None:
    text = HEADER + "qubit[2] q;\nbit[2] c;\nreset q;\nh q[0];\ncx q[0], q[1];\nc = measure q;\n"
    result = executor.execute(SIMULATOR, text, 100, None, {"observables": ["ZZ", "XX"]})
    assert result.output["expectation_values"] == pytest.approx([1.0, 1.0], abs=1e-12)
