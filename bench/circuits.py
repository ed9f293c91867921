"""The circuits every part of the benchmark runs, as OpenQASM 3 text."""

from __future__ import annotations

import math
import random

from shared.examples import BELL_QASM3

BELL = BELL_QASM3


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


HEAVY = {
    "QFT-20": qft(20),
    "1,000 gates, 16 qubits": random_circuit(16, 1000, seed=1),
    "random, 22 qubits": random_circuit(22, 300, seed=2),
}
