"""Where a circuit's bits are on the service, and its outcome keys read back as Qiskit's integers.

`qiskit.qasm3.dumps` declares loose bits first, then each register's bits in register order (the
exporter's `hoist_classical_register_declarations` and `build_quantum_declarations`), and the
service numbers bits in the order they are declared. A circuit with a loose bit, or registers that
do not follow the circuit's bit order, is numbered differently there: outcomes and Pauli letters
are moved back here, so clbit i of the circuit is always bit i of what Qiskit reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from qiskit.circuit import QuantumCircuit


def _declared(circuit: QuantumCircuit, bits: Sequence[Any], registers: Iterable[Any]) -> list[int]:
    """The circuit's indices of `bits` in the order the exported text declares them."""
    loose = [index for index, bit in enumerate(bits) if not circuit.find_bit(bit).registers]
    return loose + [circuit.find_bit(bit).index for register in registers for bit in register]


def qubit_order(circuit: QuantumCircuit) -> list[int]:
    """Service qubit j is the circuit's qubit `order[j]`."""
    if circuit.layout is not None:  # exported as physical qubits `$0`, `$1`, …, in circuit order
        return list(range(circuit.num_qubits))
    return _declared(circuit, circuit.qubits, circuit.qregs)


def clbit_order(circuit: QuantumCircuit) -> list[int]:
    """Service clbit j is the circuit's clbit `order[j]`."""
    return _declared(circuit, circuit.clbits, circuit.cregs)


def pauli_label(label: str, order: Sequence[int]) -> str:
    """A Pauli string over the circuit's qubits (qubit 0 rightmost) as the service's qubits read it."""
    width = len(label)
    return "".join(label[width - 1 - order[j]] for j in reversed(range(width)))


class OutcomeReader:
    """One circuit's outcome keys (`"1 01"`: registers separated by spaces) as Qiskit reads outcomes:
    an integer whose bit i is the circuit's clbit i, written in hexadecimal (`"0x5"`) for a Result."""

    def __init__(self, circuit: QuantumCircuit) -> None:
        self.order = clbit_order(circuit)
        self._in_order = self.order == list(range(len(self.order)))
        self._hex: dict[str, str] = {}

    def value(self, key: str) -> int:
        bits = key.replace(" ", "")
        if self._in_order:
            return int(bits, 2) if bits else 0
        width = len(bits)
        return sum(1 << self.order[j] for j in range(width) if bits[width - 1 - j] == "1")

    def hex(self, key: str) -> str:
        if key not in self._hex:
            self._hex[key] = hex(self.value(key))
        return self._hex[key]

    def counts(self, counts: Mapping[str, int]) -> dict[str, int]:
        return {self.hex(key): n for key, n in counts.items()}

    def memory(self, memory: Iterable[str]) -> list[str]:
        return [self.hex(key) for key in memory]

    def bits(self, memory: Sequence[str], shape: tuple[int, ...]) -> np.ndarray:
        """Every shot's outcome as booleans, shaped `(*shape, shots, clbits)`: column c is the
        circuit's clbit `clbits - 1 - c` (the leftmost column is the last clbit, as in a key)."""
        width = len(self.order)
        text = "".join(key.replace(" ", "") for key in memory).encode("ascii")
        served = (np.frombuffer(text, dtype=np.uint8) == ord("1")).reshape(*shape, -1, width)
        # Service clbit j (column width-1-j) holds the circuit's clbit order[j].
        columns = np.empty(width, dtype=np.intp)
        for j, index in enumerate(self.order):
            columns[width - 1 - index] = width - 1 - j
        return served[..., columns]
