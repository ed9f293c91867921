"""Qiskit circuits and their parameter values as the service's tasks, and the seeds that make a
batch sample exactly what one `AerSimulator.run` call samples."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from qiskit.circuit import Parameter, QuantumCircuit

from qtq.circuits import export

# Aer seeds experiment k of one run() with seed_simulator + 2113 * k (qiskit-aer 0.18), and the
# service runs a sweep as one run(): so the task holding experiments k, k+1, … gets seed + 2113 * k,
# and a batch reproduces, shot for shot, the same circuits run in one AerSimulator.run().
AER_SEED_STRIDE = 2113


@dataclass(frozen=True)
class CircuitTask:
    """One task's body (without seed), and how many experiments (sweep points) it holds."""

    body: dict[str, Any]
    points: int


def circuit_task(circuit: QuantumCircuit, values: Mapping[Parameter, Any] | None = None, **fields: Any) -> CircuitTask:
    """The circuit exported to OpenQASM 3 with `values` (a number, or a 1-D sequence for a sweep, per
    parameter) keyed by its exported input names; `fields` (shots, memory, …) are set unless None."""
    exported = export(circuit)
    body: dict[str, Any] = {"circuit": exported.qasm}
    body.update({key: value for key, value in fields.items() if value is not None})
    lengths = set()
    if values:
        parameters: dict[str, Any] = {}
        for parameter, value in values.items():
            if parameter not in exported.names:
                raise ValueError(f"{parameter!r} is not a parameter of circuit {circuit.name!r}")
            array = np.asarray(value, dtype=float)
            if array.ndim > 1:
                raise ValueError(f"the values of {parameter!r} must be a number or a 1-D sequence")
            if array.ndim == 1:
                lengths.add(len(array))
            parameters[exported.names[parameter]] = array.tolist()
        if len(lengths) > 1:
            raise ValueError(f"the sweeps of circuit {circuit.name!r} differ in length: {sorted(lengths)}")
        body["parameters"] = parameters
    return CircuitTask(body, lengths.pop() if lengths else 1)


def swept(circuit: QuantumCircuit, table: np.ndarray) -> dict[Parameter, Any]:
    """Parameter values shaped `(*shape, parameters)` (a BindingsArray's `as_array`) as `circuit_task`'s
    values: one number each for shape `()`, else a flat sweep over every point in C order."""
    if table.ndim == 1:
        return dict(zip(circuit.parameters, table.tolist(), strict=True))
    flat = table.reshape(-1, table.shape[-1])
    return {parameter: flat[:, i] for i, parameter in enumerate(circuit.parameters)}


def seeded(
    tasks: Sequence[CircuitTask], seed: int | None, runs: Sequence[Hashable] | None = None
) -> list[dict[str, Any]]:
    """The bodies, each with the seed of its first experiment (none without a seed). `runs` names the
    Aer run each task belongs to (Aer's SamplerV2 makes one run per number of shots): each run's
    experiments are counted from `seed`; by default all tasks are one run."""
    bodies = []
    first: dict[Hashable, int] = {}
    for index, task in enumerate(tasks):
        run = runs[index] if runs is not None else None
        body = dict(task.body)
        if seed is not None:
            body["seed"] = seed + AER_SEED_STRIDE * first.get(run, 0)
        bodies.append(body)
        first[run] = first.get(run, 0) + task.points
    return bodies
