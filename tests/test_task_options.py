"""Sweeps, observables, memory, method and noise through the real API and workers."""

from __future__ import annotations

import math

import httpx
import pytest

from tests.services import BELL_QASM3, submit, wait_done

HEADER = 'OPENQASM 3.0;\ninclude "stdgates.inc";\n'
RX = HEADER + "input float theta;\nqubit[1] q;\nbit[1] c;\nrx(theta) q[0];\nc[0] = measure q[0];\n"
TWO_INPUTS = HEADER + "input float theta;\ninput angle phi;\nqubit[1] q;\nbit[1] c;\nrx(theta) q[0];\nrz(phi) q[0];\n"
TWO_INPUTS += "c[0] = measure q[0];\n"
BELL_STATE = HEADER + "qubit[2] q;\nh q[0];\ncx q[0], q[1];\n"  # no measurements


def run(client: httpx.Client, circuit: str, **fields: object) -> dict:
    task = wait_done(client, submit(client, circuit, **fields), timeout=120)
    assert None not in task.values()
    return task


def test_a_sweep_of_rx_goes_from_all_zero_to_all_one(client: httpx.Client) -> None:
    task = run(client, RX, shots=2000, seed=3, parameters={"theta": [0, math.pi / 2, math.pi]})
    assert task["status"] == "completed", task
    assert "result" not in task and task["parameters"] == {"theta": [0, math.pi / 2, math.pi]}
    first, middle, last = task["results"]
    assert first == {"parameters": {"theta": 0.0}, "counts": {"0": 2000}}
    assert last["parameters"] == {"theta": math.pi} and last["counts"] == {"1": 2000}
    # P(1) = sin²(π/4) = 1/2: 2000 shots put 1000 ± 4.5σ (σ ≈ 22) within 900..1100.
    assert sum(middle["counts"].values()) == 2000 and 900 <= middle["counts"]["1"] <= 1100


def test_a_seeded_sweep_gives_identical_results_twice(client: httpx.Client) -> None:
    fields = {"shots": 500, "seed": 11, "parameters": {"theta": [0.3, 1.1, 2.0], "phi": 0.7}}
    first, second = run(client, TWO_INPUTS, **fields), run(client, TWO_INPUTS, **fields)
    assert first["results"] == second["results"]
    assert [point["parameters"] for point in first["results"]] == [
        {"theta": 0.3, "phi": 0.7},
        {"theta": 1.1, "phi": 0.7},
        {"theta": 2.0, "phi": 0.7},
    ]


def test_bell_expectation_values_are_exact(client: httpx.Client) -> None:
    task = run(client, BELL_QASM3, shots=100, observables=["ZZ", "XX", "ZI", [["ZZ", 0.5], ["YY", -0.5]]])
    assert task["status"] == "completed", task
    assert task["observables"] == ["ZZ", "XX", "ZI", [["ZZ", 0.5], ["YY", -0.5]]]
    for value, expected in zip(task["expectation_values"], [1, 1, 0, 1], strict=True):
        assert abs(value - expected) < 1e-9
    assert sum(task["result"].values()) == 100  # the counts are still there


def test_observables_without_measurements_give_only_expectation_values(client: httpx.Client) -> None:
    task = run(client, BELL_STATE, observables=["ZZ", "XX"])
    assert task["status"] == "completed", task
    assert "result" not in task
    assert [round(v, 9) for v in task["expectation_values"]] == [1, 1]


def test_two_qubit_depolarizing_noise_lowers_zz_by_the_model(client: httpx.Client) -> None:
    task = run(client, BELL_STATE, observables=["ZZ"], noise={"depolarizing_2q": 0.2})
    assert task["noise"] == {"depolarizing_2q": 0.2}
    # ρ → (1-p)ρ + p·I/4 after the cx: <ZZ> = 1 - p exactly, on the density matrix.
    assert abs(task["expectation_values"][0] - 0.8) < 1e-9


def test_one_qubit_depolarizing_noise_shrinks_z_by_the_model(client: httpx.Client) -> None:
    flipped = HEADER + "qubit[1] q;\nx q[0];\n"
    task = run(client, flipped, observables=["Z"], noise={"depolarizing_1q": 0.3})
    # ρ → (1-p)ρ + p·I/2 after the x: <Z> = -(1 - p) exactly, on the density matrix.
    assert abs(task["expectation_values"][0] + 0.7) < 1e-9


@pytest.mark.parametrize(
    ("method", "circuit", "shots", "outcomes"),
    [
        ("matrix_product_state", BELL_QASM3, 400, {"00", "11"}),
        # A non-Clifford t, which the stabilizer method refuses; Aer's extended stabilizer samples
        # each shot on its own (about 70 ms a shot here), hence so few.
        (
            "extended_stabilizer",
            HEADER + "qubit[2] q;\nbit[2] c;\nh q[0];\nt q[0];\ncx q[0], q[1];\nc = measure q;\n",
            10,
            {"00", "11"},
        ),
    ],
)
def test_the_other_methods_run_what_they_can(
    client: httpx.Client, method: str, circuit: str, shots: int, outcomes: set
) -> None:
    task = run(client, circuit, shots=shots, seed=4, method=method)
    assert task["status"] == "completed" and task["method"] == method, task
    assert set(task["result"]) <= outcomes and sum(task["result"].values()) == shots


def test_readout_noise_p10_of_one_reads_every_one_as_zero(client: httpx.Client) -> None:
    task = run(client, BELL_QASM3, shots=300, seed=2, noise={"readout": {"p10": 1}})
    assert task["result"] == {"00": 300}


def test_memory_lists_every_shot_and_agrees_with_counts(client: httpx.Client) -> None:
    task = run(client, BELL_QASM3, shots=200, seed=5, memory=True)
    assert len(task["memory"]) == 200
    assert {key: task["memory"].count(key) for key in set(task["memory"])} == task["result"]
    sweep = run(client, RX, shots=50, seed=5, memory=True, parameters={"theta": [0, math.pi]})
    assert sweep["memory"] is True
    assert [point["memory"] for point in sweep["results"]] == [["0"] * 50, ["1"] * 50]


def test_a_method_that_cannot_run_the_circuit_says_so(client: httpx.Client) -> None:
    t_gate = HEADER + "qubit[1] q;\nbit[1] c;\nt q[0];\nc[0] = measure q[0];\n"
    task = run(client, t_gate, method="stabilizer")
    assert task["status"] == "failed" and task["method"] == "stabilizer"
    assert task["error"] == (
        'MethodError: the "stabilizer" method cannot run this circuit: it contains invalid instructions '
        '{"gates": {t}}; choose another method (or automatic)'
    )
    clifford = run(client, BELL_QASM3, shots=64, seed=1, method="stabilizer")
    assert set(clifford["result"]) <= {"00", "11"}


@pytest.mark.parametrize(
    ("circuit", "fields", "error"),
    [
        (RX, {}, 'ParameterError: the circuit declares inputs theta; "parameters" gives no value for theta'),
        (
            TWO_INPUTS,
            {"parameters": {"theta": 1.0}},
            'ParameterError: the circuit declares inputs phi, theta; "parameters" gives no value for phi',
        ),
        (
            RX,
            {"parameters": {"theta": 1.0, "gamma": 2.0}},
            'ParameterError: "parameters" names gamma, which the circuit does not declare (it declares theta)',
        ),
        (
            BELL_QASM3,
            {"observables": ["ZZZ"]},
            'ObservableError: "ZZZ" has 3 letters; the circuit has 2 qubits (one letter per qubit, qubit 0 rightmost)',
        ),
    ],
)
def test_what_needs_the_circuit_fails_the_task_with_one_line(
    client: httpx.Client, circuit: str, fields: dict, error: str
) -> None:
    task = run(client, circuit, **fields)
    assert task["status"] == "failed" and task["error"] == error
