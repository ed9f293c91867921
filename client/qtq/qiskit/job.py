"""`QTQJob`: the batch one `QTQBackend.run` submitted, as a Qiskit `JobV1`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qiskit.circuit import QuantumCircuit
from qiskit.providers import JobError, JobStatus, JobV1
from qiskit.result import Result

from qtq.batch import Batch
from qtq.qiskit import results


def job_status(states: Mapping[str, int]) -> JobStatus:
    """Task states, counted over a batch, as one JobStatus: QUEUED until a task starts, RUNNING
    until every task is final, then CANCELLED if any was cancelled, ERROR if any failed, else DONE."""
    present = {state for state, n in states.items() if n}
    if present <= {"submitted"}:
        return JobStatus.QUEUED
    if present & {"submitted", "pending"}:
        return JobStatus.RUNNING
    if "cancelled" in present:
        return JobStatus.CANCELLED
    if "failed" in present:
        return JobStatus.ERROR
    return JobStatus.DONE


@dataclass(frozen=True)
class Experiments:
    """What one task of the job runs: its circuit, how many experiments (sweep points), their shots."""

    circuit: QuantumCircuit
    points: int
    shots: int


class QTQJob(JobV1):
    """One batch of tasks: `status()` reads the batch's states, `result()` waits for every task and
    gives a `Result` with one experiment per circuit (per point of a circuit's `parameter_binds`)."""

    def __init__(self, backend: Any, batch: Batch, experiments: Sequence[Experiments]) -> None:
        super().__init__(backend, batch.id)
        self.batch = batch
        self._experiments = list(experiments)
        self._result: Result | None = None

    def submit(self) -> None:
        raise JobError("QTQBackend.run() submits the job; it cannot be submitted again")

    def status(self) -> JobStatus:
        """The batch's state as it is now (once the result is read, as it was then: final)."""
        state = self.batch.state if self._result is not None else None
        return job_status((state or self.batch.refresh()).states)

    def result(self, timeout: float | None = None) -> Result:
        """Wait until every task is final (`qtq.WaitTimeout` after `timeout` seconds), then the Result;
        a failed or cancelled task's experiments have `success` False and its error as `status`."""
        if self._result is None:
            self.batch.wait(timeout, progress=False)
            tasks = list(self.batch.tasks())
            found = [
                experiment
                for task, plan in zip(tasks, self._experiments, strict=True)
                for experiment in results.experiments(task, plan.circuit, plan.points, plan.shots)
            ]
            backend = self.backend()
            self._result = results.result(backend.name, backend.backend_version, self.job_id(), found)
        return self._result

    def cancel(self) -> None:
        """Cancel every task not yet final (running ones stop within about a second)."""
        self.batch.cancel()
