"""A task as the service last showed it, and what can be done with it (sync `Task`, async `AsyncTask`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

from qtq import _protocol as protocol
from qtq._http import AsyncTransport, Transport
from qtq.errors import Conflict, TaskCancelled, TaskFailed, WaitTimeout

Counts: TypeAlias = dict[str, int]


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep: the parameter values it ran with and what it produced."""

    parameters: dict[str, float]
    counts: Counts
    memory: list[str] | None = None
    expectation_values: list[float] | None = None


class TaskView:
    """The fields of a task as last read; `data` is the service's JSON (a list item has fewer fields)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    @property
    def data(self) -> dict[str, Any]:
        return dict(self._data)

    @property
    def id(self) -> str:
        return str(self._data["task_id"])

    @property
    def status(self) -> str:
        """`submitted`, `pending`, `completed`, `failed` or `cancelled`."""
        return str(self._data["status"])

    @property
    def done(self) -> bool:
        """True once the task is completed, failed or cancelled."""
        return self.status in protocol.TERMINAL

    @property
    def error(self) -> str | None:
        """A failed task's one-line error, `Type: message`."""
        return self._data.get("error")

    @property
    def tags(self) -> dict[str, str]:
        return dict(self._data.get("tags") or {})

    @property
    def batch_id(self) -> str | None:
        return self._data.get("batch_id")

    @property
    def is_sweep(self) -> bool:
        return "results" in self._data

    @property
    def counts(self) -> Counts | None:
        """A completed task's counts (None for a sweep, or a circuit that measures nothing)."""
        result = self._data.get("result")
        return dict(result) if isinstance(result, dict) else None

    @property
    def points(self) -> list[SweepPoint] | None:
        """A completed sweep's points, in the order of the parameter values."""
        results = self._data.get("results")
        if not isinstance(results, list):
            return None
        return [
            SweepPoint(
                parameters=dict(point.get("parameters", {})),
                counts=dict(point.get("counts", {})),
                memory=point.get("memory"),
                expectation_values=point.get("expectation_values"),
            )
            for point in results
        ]

    @property
    def expectation_values(self) -> list[float] | None:
        """One value per observable, in order (a sweep's are in its `points`)."""
        values = self._data.get("expectation_values")
        return list(values) if isinstance(values, list) else None

    @property
    def memory(self) -> list[str] | None:
        """Every shot's outcome in shot order, when asked for with `memory=True` (a sweep's are in its `points`)."""
        memory = self._data.get("memory")  # `true` until the outcomes replace it
        return list(memory) if isinstance(memory, list) else None

    def _outcome(self) -> Counts | list[Counts]:
        if self.status == "cancelled":
            raise TaskCancelled(self.id, self.error or f"task {self.id} was cancelled")
        if self.status == "failed":
            raise TaskFailed(self.id, self.error or f"task {self.id} failed")
        points = self.points
        if points is not None:
            return [point.counts for point in points]
        return self.counts or {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, status={self.status!r})"


def _timeout(task: TaskView, timeout: float | None) -> WaitTimeout:
    return WaitTimeout(f"task {task.id} is still {task.status} after {timeout} s")


class Task(TaskView):
    """A task of a `Client`."""

    def __init__(self, transport: Transport, data: dict[str, Any]) -> None:
        super().__init__(data)
        self._transport = transport

    def refresh(self) -> Task:
        """Read the task again."""
        self._data = self._transport.send(protocol.get_task(self.id))
        return self

    def wait(self, timeout: float | None = None) -> Task:
        """Long-poll until the task is completed, failed or cancelled; `WaitTimeout` after `timeout` seconds."""
        deadline = protocol.Deadline(timeout)
        while not self.done:
            self._data = self._transport.send(protocol.get_task(self.id, deadline.next_wait()))
            if not self.done and deadline.expired:
                raise _timeout(self, timeout)
        return self

    def result(self, timeout: float | None = None) -> Counts | list[Counts]:
        """Wait, then the counts: one dict, or for a sweep a list with one dict per point.

        A failed task raises `TaskFailed` (its `error` is the one-line error); a cancelled one
        `TaskCancelled`. A circuit that measures nothing (observables only) gives `{}`.
        """
        return self.wait(timeout)._outcome()

    def cancel(self) -> Task:
        """Cancel the task: `cancelled` if it was waiting, `cancel_requested` while its worker stops it.
        A task that had already finished raises `Conflict`."""
        try:
            self._data = self._transport.send(protocol.cancel_task(self.id))
        except Conflict as error:
            if not protocol.already_cancelled(error.body):
                raise
            self.refresh()
        return self


class AsyncTask(TaskView):
    """A task of an `AsyncClient`: the same as `Task`, with coroutines."""

    def __init__(self, transport: AsyncTransport, data: dict[str, Any]) -> None:
        super().__init__(data)
        self._transport = transport

    async def refresh(self) -> AsyncTask:
        self._data = await self._transport.send(protocol.get_task(self.id))
        return self

    async def wait(self, timeout: float | None = None) -> AsyncTask:
        deadline = protocol.Deadline(timeout)
        while not self.done:
            self._data = await self._transport.send(protocol.get_task(self.id, deadline.next_wait()))
            if not self.done and deadline.expired:
                raise _timeout(self, timeout)
        return self

    async def result(self, timeout: float | None = None) -> Counts | list[Counts]:
        return (await self.wait(timeout))._outcome()

    async def cancel(self) -> AsyncTask:
        try:
            self._data = await self._transport.send(protocol.cancel_task(self.id))
        except Conflict as error:
            if not protocol.already_cancelled(error.body):
                raise
            await self.refresh()
        return self


def paged_tasks(transport: Transport, call: protocol.Call) -> Iterator[Task]:
    """The tasks of a paged list (`call` asks for its first page), a page read as the iteration gets to it."""
    while True:
        items, cursor = protocol.page(transport.send(call))
        yield from (Task(transport, item) for item in items)
        if cursor is None:
            return
        call = protocol.next_page(call, cursor)


async def apaged_tasks(transport: AsyncTransport, call: protocol.Call) -> AsyncIterator[AsyncTask]:
    """`paged_tasks` for an `AsyncClient`."""
    while True:
        items, cursor = protocol.page(await transport.send(call))
        for item in items:
            yield AsyncTask(transport, item)
        if cursor is None:
            return
        call = protocol.next_page(call, cursor)
