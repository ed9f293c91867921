"""The worker's simulation path in-process: count keys, and errors that say where and what to change."""

from __future__ import annotations

from typing import Any

import pytest
from qiskit_aer import AerSimulator

from worker import executor, parsing
from worker.results import Outcome

pytestmark = pytest.mark.database_independent

HEADER = 'OPENQASM 3.0;\ninclude "stdgates.inc";\n'
SIMULATOR = executor.Simulator(max_memory_mb=4096, threads=1)


def run(text: str, shots: int = 1000, seed: int = 5) -> dict[str, int]:
    result = executor.execute(SIMULATOR, text, shots, seed)
    assert result.outcome is Outcome.COUNTS and result.counts is not None, result.error
    assert sum(result.counts.values()) == shots
    return result.counts


def as_registers(text: str, loose: list[str]) -> str:
    """The same circuit with each loose `bit x;` declared as the one-bit register `bit[1] x;`."""
    for name in loose:
        text = text.replace(f"bit {name};", f"bit[1] {name};").replace(f"{name} = measure", f"{name}[0] = measure")
    return text


LAYOUTS = {
    "loose bits only": (
        HEADER + "qubit[2] q;\nbit a;\nbit b;\nh q[0];\nh q[1];\na = measure q[0];\nb = measure q[1];\n",
        ["a", "b"],
    ),
    "mixed": (
        HEADER + "qubit[3] q;\nbit a;\nbit[2] r;\nbit m;\nx q[0];\nh q[1];\nh q[2];\n"
        "a = measure q[0];\nr[0] = measure q[1];\nr[1] = measure q[2];\nm = measure q[1];\n",
        ["a", "m"],
    ),
    "teleport": (
        HEADER + "qubit[3] q;\nbit m0;\nbit m1;\nbit[1] out;\nh q[0];\nh q[1];\ncx q[1], q[2];\ncx q[0], q[1];\n"
        "h q[0];\nm0 = measure q[0];\nm1 = measure q[1];\nout[0] = measure q[2];\n",
        ["m0", "m1"],
    ),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_a_loose_bit_counts_as_a_one_bit_register(layout: str) -> None:
    text, loose = LAYOUTS[layout]
    counts = run(text)
    assert counts == run(as_registers(text, loose))
    assert len(counts) > 2  # outcomes really differ: none of them were merged away


def test_keys_match_the_raw_per_shot_memory() -> None:
    text = LAYOUTS["mixed"][0]
    circuit = parsing.parse(text)
    memory = AerSimulator().run(circuit, shots=300, seed_simulator=5, memory=True).result().results[0].data.memory
    expected: dict[str, int] = {}
    for shot in memory:  # memory slots in declaration order: a, r[0], r[1], m
        value = int(shot, 16)
        a, r0, r1, m = (value >> i & 1 for i in range(4))
        key = f"{m} {r1}{r0} {a}"
        expected[key] = expected.get(key, 0) + 1
    assert run(text, shots=300, seed=5) == expected


def test_registers_alone_keep_qiskits_keys() -> None:
    text = (
        HEADER
        + "qubit[3] q;\nbit[2] c;\nbit[1] d;\nx q[0];\nx q[2];\n"
        + "c[0] = measure q[0];\nc[1] = measure q[1];\nd[0] = measure q[2];\n"
    )
    assert run(text, shots=10) == {"1 01": 10}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            HEADER + "qubit[3] q;\nbit[2] c;\nc = measure q;\n",
            "CircuitError: line 5: measure q into c maps 3 qubits to 2 bits; "
            "declare bit[3] c or measure qubit by qubit (c[0] = measure q[0];)",
        ),
        (
            HEADER + "qubit[1] q;\nbit[1] c;\nrz(pi/0) q[0];\nc[0] = measure q[0];\n",
            "ZeroDivisionError: line 5: a gate parameter divides by zero",
        ),
        (
            HEADER + "qubit[3] q;\nbit[3] c;\nfor int i in [0:1] { cx q[i], q[i+1]; }\nc = measure q;\n",
            "TypeError: line 5: a register indexed by a loop variable (such as q[i]) is not supported; "
            "write the indices out, e.g. cx q[0], q[1];",
        ),
        (
            'OPENQASM 2.0;\ninclude "qelib1.inc";\nopaque g a;\nqreg q[1];\ncreg c[1];\ng q[0];\nmeasure q -> c;\n',
            "OpaqueGate: gate 'g' is declared without a body (opaque), so there is nothing to simulate; "
            "define it with a body, e.g. gate g a { … }",
        ),
    ],
)
def test_errors_say_where_and_what_to_change(text: str, error: str) -> None:
    result = executor.execute(SIMULATOR, text, 10, 1)
    assert result.outcome is Outcome.ERROR
    assert result.error == error


def test_aer_failure_text_becomes_one_line() -> None:
    text = (
        "Simulation failed and returned the following error message:\nERROR:  [Experiment 0] Insufficient memory to "
        "run circuit circuit-3 using the statevector simulator. Required memory: 16M, max memory: 4M , ERROR:  "
        "Insufficient memory to run circuit circuit-3 using the statevector simulator. Required memory: 16M, max "
        "memory: 4M"
    )
    assert executor.aer_message(text) == (
        "Insufficient memory to run the circuit using the statevector simulator. Required memory: 16M, "
        "max memory: 4M (raise WORKER_MAX_MEMORY_MB or use fewer qubits)"
    )


@pytest.mark.parametrize(
    ("qubits", "operations", "drawn"),
    [(16, 80, True), (16, 81, False), (17, 17, False), (2, 2, True)],
)
def test_a_circuit_is_drawn_up_to_80_operations_and_16_qubits(qubits: int, operations: int, drawn: bool) -> None:
    gates = "".join(f"x q[{i % qubits}];\n" for i in range(operations - 1))  # and one measurement
    result = executor.execute(SIMULATOR, HEADER + f"qubit[{qubits}] q;\nbit[1] c;\n{gates}c[0] = measure q[0];\n", 1, 1)
    assert result.outcome is Outcome.COUNTS, result.error
    assert bool(result.details.diagram) is drawn
    if drawn:
        assert result.details.diagram is not None and result.details.diagram.count("┤ X ├") == operations - 1


def test_circuits_under_14_qubits_run_on_one_thread_and_larger_ones_on_the_workers_share() -> None:
    """The README: each simulation uses SIMULATOR_THREADS threads (the worker's share of the cores),
    and one for circuits under 14 qubits. Aer's own result says how many threads updated the state."""
    simulator = executor.Simulator(max_memory_mb=4096, threads=2)
    jobs: list[Any] = []
    aer_run = simulator.backend.run

    def recording_run(*args: Any, **kwargs: Any) -> Any:
        jobs.append(aer_run(*args, **kwargs))
        return jobs[-1]

    simulator.backend.run = recording_run  # type: ignore[method-assign]
    for qubits, threads in ((2, 1), (13, 1), (14, 2)):
        jobs.clear()
        text = HEADER + f"qubit[{qubits}] q;\nbit[{qubits}] c;\nh q;\nc = measure q;\n"
        assert executor.execute(simulator, text, 10, 1).outcome is Outcome.COUNTS
        used = [job.result().results[0].metadata["parallel_state_update"] for job in jobs]
        assert used == [threads], f"{qubits} qubits ran with {used} threads, not {threads}"
