"""`QTQPrimitiveJob`: the batch a native primitive's `run()` submitted, as a Qiskit `BasePrimitiveJob`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from qiskit.primitives import BasePrimitiveJob
from qiskit.providers import JobStatus
from qiskit.providers.jobstatus import JOB_FINAL_STATES

from qtq.batch import Batch
from qtq.errors import TaskCancelled, TaskFailed
from qtq.qiskit.job import job_status
from qtq.task import Task

ResultT = TypeVar("ResultT")


def completed(tasks: Sequence[Task]) -> Sequence[Task]:
    """The tasks, once each is completed: the first that is not raises `TaskFailed` (or `TaskCancelled`)
    naming its PUB."""
    for index, task in enumerate(tasks):
        if task.status != "completed":
            error = f"PUB {index}: {task.error or f'task {task.id} is {task.status}'}"
            raise (TaskCancelled if task.status == "cancelled" else TaskFailed)(task.id, error)
    return tasks


class QTQPrimitiveJob(BasePrimitiveJob[ResultT, JobStatus]):
    """One batch, one task per PUB: `result()` waits for every task, then builds the primitive's result."""

    def __init__(self, batch: Batch, build: Callable[[Sequence[Task]], ResultT]) -> None:
        super().__init__(batch.id)
        self.batch = batch
        self._build = build
        self._result: ResultT | None = None

    def result(self, timeout: float | None = None) -> ResultT:
        """Wait (`qtq.WaitTimeout` after `timeout` seconds), then the result; a failed or cancelled
        task raises `TaskFailed` or `TaskCancelled`."""
        if self._result is None:
            self.batch.wait(timeout, progress=False)
            self._result = self._build(completed(list(self.batch.tasks())))
        return self._result

    def status(self) -> JobStatus:
        state = self.batch.state if self._result is not None else None
        return job_status((state or self.batch.refresh()).states)

    def done(self) -> bool:
        return self.status() in JOB_FINAL_STATES

    def running(self) -> bool:
        return self.status() is JobStatus.RUNNING

    def cancelled(self) -> bool:
        return self.status() is JobStatus.CANCELLED

    def in_final_state(self) -> bool:
        return self.done()

    def cancel(self) -> None:
        """Cancel every task not yet final (running ones stop within about a second)."""
        self.batch.cancel()
