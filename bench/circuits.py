"""The circuits every part of the benchmark runs, as OpenQASM 3 text."""

from __future__ import annotations

import math
import random

from shared.examples import BELL_QASM3

BELL = BELL_QASM3


def numbered(circuit: str, n: int) -> str:
    """The circuit with a comment naming n at its end: the same circuit in a text of its own. A
    worker keeps the circuits of the last texts it ran (worker.circuit_cache); the benchmark's
    tasks each bring a circuit to parse, as the loops it compares them with parse each one."""
    return f"{circuit}// {n}\n"


def qft(n: int) -> str:
    """An n-qubit QFT written as a person would, with `pi/2^k` angles, then measured."""
    lines = ["OPENQASM 3.0;", 'include "stdgates.inc";', f"qubit[{n}] q;", f"bit[{n}] c;"]
    for i in range(n):
        lines.append(f"x q[{i}];" if i % 3 == 0 else f"h q[{i}];")
    for target in range(n - 1, -1, -1):
        lines.append(f"h q[{target}];")
        for k, control in enumerate(range(target - 1, -1, -1), start=1):
            lines.append(f"cp(pi/{2**k}) q[{control}], q[{target}];")
    for i in range(n // 2):
        lines.append(f"swap q[{i}], q[{n - 1 - i}];")
    lines.append("c = measure q;")
    return "\n".join(lines) + "\n"


def random_circuit(qubits: int, gates: int, seed: int) -> str:
    """A reproducible random circuit of one- and two-qubit gates with numeric angles."""
    rng = random.Random(seed)
    lines = ["OPENQASM 3.0;", 'include "stdgates.inc";', f"qubit[{qubits}] q;", f"bit[{qubits}] c;"]
    for _ in range(gates):
        kind = rng.random()
        a, b = rng.sample(range(qubits), 2)
        if kind < 0.35:
            lines.append(f"{rng.choice(['h', 'x', 'sx', 't', 's'])} q[{a}];")
        elif kind < 0.6:
            lines.append(f"rz({rng.uniform(-math.pi, math.pi)!r}) q[{a}];")
        else:
            lines.append(f"cx q[{a}], q[{b}];")
    lines.append("c = measure q;")
    return "\n".join(lines) + "\n"


def sweep_circuit(bound: tuple[float, float] | None = None) -> str:
    """A 4-qubit circuit of two `input` angles, theta and phi; with `bound`, the same circuit with
    those two values written into the text instead."""
    if bound is None:
        theta, phi = "theta", "phi"
        inputs = ["input float[64] theta;", "input float[64] phi;"]
    else:
        theta, phi = repr(bound[0]), repr(bound[1])
        inputs = []
    lines = ["OPENQASM 3.0;", 'include "stdgates.inc";', *inputs, "qubit[4] q;", "bit[4] c;"]
    lines += [f"h q[{i}];" for i in range(4)]
    lines += [f"ry({theta}) q[{i}];" for i in range(4)]
    lines += ["cx q[0], q[1];", "cx q[1], q[2];", "cx q[2], q[3];"]
    lines += [f"rz({phi}) q[{i}];" for i in range(4)]
    lines += ["cx q[3], q[0];", f"rx({phi}) q[0];", f"ry({theta}) q[2];", "c = measure q;"]
    return "\n".join(lines) + "\n"


def ansatz(qubits: int, layers: int, seed: int) -> str:
    """A hardware-efficient ansatz with fixed random angles and no measurements (for observables)."""
    rng = random.Random(seed)
    lines = ["OPENQASM 3.0;", 'include "stdgates.inc";', f"qubit[{qubits}] q;"]
    for _ in range(layers):
        for i in range(qubits):
            lines.append(f"ry({rng.uniform(-math.pi, math.pi)!r}) q[{i}];")
            lines.append(f"rz({rng.uniform(-math.pi, math.pi)!r}) q[{i}];")
        lines += [f"cx q[{i}], q[{i + 1}];" for i in range(qubits - 1)]
    return "\n".join(lines) + "\n"


def observables(qubits: int) -> list[str]:
    """Ten Pauli strings over `qubits` qubits (qubit 0 rightmost): local Z, ZZ and XX terms and
    two global strings."""

    def pauli(letters: dict[int, str]) -> str:
        return "".join(letters.get(i, "I") for i in reversed(range(qubits)))

    return [
        pauli({0: "Z"}),
        pauli({qubits - 1: "Z"}),
        pauli({0: "Z", 1: "Z"}),
        pauli({5: "Z", 6: "Z"}),
        pauli({qubits - 2: "Z", qubits - 1: "Z"}),
        pauli({0: "X", 1: "X"}),
        pauli({3: "X", 4: "X"}),
        pauli({7: "Y", 8: "Y"}),
        pauli(dict.fromkeys(range(qubits), "Z")),
        pauli(dict.fromkeys(range(qubits), "X")),
    ]


HEAVY = {
    "QFT-20": qft(20),
    "1,000 gates, 16 qubits": random_circuit(16, 1000, seed=1),
    "random, 22 qubits": random_circuit(22, 300, seed=2),
}
