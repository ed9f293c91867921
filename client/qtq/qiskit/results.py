"""Finished tasks as a `qiskit.result.Result`, in the form Aer gives and Qiskit's consumers read:
counts and per-shot memory keyed in hexadecimal (`BackendSamplerV2` parses memory with
`int(x, 16)`), with `creg_sizes` and `memory_slots` in each experiment's header for `get_counts()`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qiskit.circuit import QuantumCircuit
from qiskit.result import Result
from qiskit.result.models import ExperimentResult, ExperimentResultData

from qtq.qiskit.layout import OutcomeReader
from qtq.task import TaskView


def header(circuit: QuantumCircuit) -> dict[str, Any]:
    """What Aer puts in an experiment's header (but `global_phase`, which nothing here needs)."""
    return {
        "name": circuit.name,
        "metadata": dict(circuit.metadata or {}),
        "n_qubits": circuit.num_qubits,
        "qreg_sizes": [[register.name, register.size] for register in circuit.qregs],
        "memory_slots": circuit.num_clbits,
        "creg_sizes": [[register.name, register.size] for register in circuit.cregs],
    }


def experiments(task: TaskView, circuit: QuantumCircuit, points: int, shots: int) -> list[ExperimentResult]:
    """One experiment per sweep point of a finished task (one for a task that is not a sweep)."""
    head = header(circuit)
    if task.status != "completed":
        status = "CANCELLED" if task.status == "cancelled" else "ERROR"
        error = f"{status}: {task.error or f'task {task.id} is {task.status}'}"
        return [
            ExperimentResult(shots=shots, success=False, data=ExperimentResultData(), status=error, header=head)
            for _ in range(points)
        ]
    reader = OutcomeReader(circuit)
    found = task.points
    outcomes = [(p.counts, p.memory) for p in found] if found is not None else [(task.counts or {}, task.memory)]
    return [
        ExperimentResult(
            shots=shots,
            success=True,
            data=ExperimentResultData(
                counts=reader.counts(counts), memory=reader.memory(memory) if memory is not None else None
            ),
            status="DONE",
            header=head,
            task_id=task.id,
        )
        for counts, memory in outcomes
    ]


def result(backend_name: str, backend_version: str, job_id: str, results: Sequence[ExperimentResult]) -> Result:
    """The job's Result: `success` only if every experiment succeeded."""
    succeeded = sum(1 for experiment in results if experiment.success)
    status = "COMPLETED" if succeeded == len(results) else "PARTIAL COMPLETED" if succeeded else "ERROR"
    return Result(
        backend_name=backend_name,
        backend_version=backend_version,
        job_id=job_id,
        success=succeeded == len(results),
        results=list(results),
        status=status,
    )
