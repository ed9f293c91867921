"""Small Qiskit circuits the Qiskit tests share."""

from __future__ import annotations

from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Clbit, Parameter


def bell(measure: bool = True) -> QuantumCircuit:
    circuit = QuantumCircuit(2, 2 if measure else 0)
    circuit.h(0)
    circuit.cx(0, 1)
    if measure:
        circuit.measure([0, 1], [0, 1])
    return circuit


def turn() -> tuple[QuantumCircuit, Parameter]:
    """Two qubits turned by `t`, a name OpenQASM 3 exports as `t_0` (a gate is called `t`)."""
    t = Parameter("t")
    circuit = QuantumCircuit(2, 2, name="turn")
    circuit.rx(t, 0)
    circuit.ry(t / 2, 1)
    circuit.cx(0, 1)
    circuit.measure([0, 1], [0, 1])
    return circuit, t


def loose_bits() -> QuantumCircuit:
    """Clbits a[0], a[1], a loose bit, b[0]; qasm3.dumps declares the loose bit first. a[1] and b[0]
    always read 1, the loose bit half the time."""
    a, b, loose = ClassicalRegister(2, "a"), ClassicalRegister(1, "b"), Clbit()
    circuit = QuantumCircuit(QuantumRegister(4, "q"), a, [loose], b)
    circuit.x(0)
    circuit.h(1)
    circuit.x(3)
    circuit.measure([0, 1, 2, 3], [a[1], loose, a[0], b[0]])
    return circuit
