"""A task's options turned into what Aer takes: parameter bindings, observables, a noise model.

The API has checked the shapes; what needs the circuit (which inputs it declares, how many qubits
it has) is checked here, each failure a one-line ParameterError or ObservableError.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any

from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer.noise import NoiseModel, ReadoutError, depolarizing_error

from worker.messages import TaskError

NOT_GATES = frozenset({"measure", "reset", "barrier", "delay"})
KEPT_OBSERVABLE_LISTS = 8


@dataclass(frozen=True)
class Sweep:
    """The points a task runs: one per value of its parameter arrays (a single point otherwise)."""

    points: int = 1
    is_sweep: bool = False
    # Per circuit parameter, its value at every point (what Aer's parameter_binds takes).
    binds: dict[Parameter, list[float]] = field(default_factory=dict)
    # Per point, {name: value}, as the answer shows it.
    values: list[dict[str, float]] = field(default_factory=list)


def sweep(circuit: QuantumCircuit, given: dict[str, Any] | None) -> Sweep:
    """Bind the circuit's `input` parameters to the submitted values, or say what is missing."""
    declared = {parameter.name: parameter for parameter in circuit.parameters}
    given = given or {}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise TaskError(
            "ParameterError",
            f'"parameters" names {", ".join(unknown)}, which the circuit does not declare'
            + (f" (it declares {', '.join(sorted(declared))})" if declared else " (it declares no inputs)"),
        )
    missing = sorted(set(declared) - set(given))
    if missing:
        raise TaskError(
            "ParameterError",
            f"the circuit declares inputs {', '.join(sorted(declared))}; "
            f'"parameters" gives no value for {", ".join(missing)}',
        )
    lengths = [len(v) for v in given.values() if isinstance(v, list)]
    points = lengths[0] if lengths else 1
    columns = {name: [float(x) for x in v] if isinstance(v, list) else [float(v)] * points for name, v in given.items()}
    return Sweep(
        points=points,
        is_sweep=bool(lengths),
        binds={declared[name]: column for name, column in columns.items()},
        values=[{name: column[i] for name, column in columns.items()} for i in range(points)],
    )


def observables(given: list[Any] | None, num_qubits: int) -> list[SparsePauliOp]:
    """Each observable as a SparsePauliOp over all the circuit's qubits (qubit 0 rightmost). The
    operators of the last few lists are kept: an optimizer loop asks for the same observables at
    every step, and building ten of them takes most of a millisecond."""
    return list(_operators(json.dumps(given or []), num_qubits))


@functools.lru_cache(maxsize=KEPT_OBSERVABLE_LISTS)
def _operators(given: str, num_qubits: int) -> tuple[SparsePauliOp, ...]:
    operators = []
    for observable in json.loads(given):
        terms = [(observable, 1.0)] if isinstance(observable, str) else [(p, float(c)) for p, c in observable]
        for pauli, _ in terms:
            if len(pauli) != num_qubits:
                raise TaskError(
                    "ObservableError",
                    f'"{pauli}" has {len(pauli)} letters; the circuit has {num_qubits} qubits '
                    "(one letter per qubit, qubit 0 rightmost)",
                )
        operators.append(SparsePauliOp.from_list(terms))
    return tuple(operators)


def noise_model(given: dict[str, Any] | None, circuit: QuantumCircuit) -> NoiseModel | None:
    """Depolarizing errors after the circuit's 1- and 2-qubit gates, and readout errors, as asked."""
    if not given:
        return None
    model = NoiseModel()
    gates: dict[int, set[str]] = {1: set(), 2: set()}
    for instruction in circuit.data:
        operation = instruction.operation
        if operation.name not in NOT_GATES and operation.num_qubits in gates:
            gates[operation.num_qubits].add(operation.name)
    for size, key in ((1, "depolarizing_1q"), (2, "depolarizing_2q")):
        p = given.get(key)
        if p and gates[size]:
            model.add_all_qubit_quantum_error(depolarizing_error(p, size), sorted(gates[size]))
    readout = given.get("readout") or {}
    p01, p10 = readout.get("p01") or 0.0, readout.get("p10") or 0.0
    if p01 or p10:
        model.add_all_qubit_readout_error(ReadoutError([[1 - p01, p01], [p10, 1 - p10]]))
    return model
