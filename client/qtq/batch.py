"""Many tasks submitted as one batch: its progress, a wait with a progress bar, its tasks in order."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from qtq import _protocol as protocol
from qtq._http import AsyncTransport, Transport
from qtq.errors import WaitTimeout
from qtq.progress import ProgressBar
from qtq.task import AsyncTask, Task, apaged_tasks, paged_tasks


@dataclass(frozen=True)
class BatchState:
    """GET /batches/{batch_id}: how many tasks are in each state."""

    batch_id: str
    total: int
    states: dict[str, int]
    done: bool
    created_at: str
    finished_at: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> BatchState:
        return cls(
            batch_id=body["batch_id"],
            total=body["total"],
            states=dict(body.get("states", {})),
            done=bool(body.get("done")),
            created_at=body.get("created_at", ""),
            finished_at=body.get("finished_at"),
            tags=dict(body.get("tags") or {}),
        )

    @property
    def finished(self) -> int:
        """Tasks completed, failed or cancelled."""
        return sum(n for state, n in self.states.items() if state in protocol.TERMINAL)

    @property
    def failed(self) -> int:
        return self.states.get("failed", 0)


class _Waiting:
    """One wait's rules, shared by the sync and the async batch: when to stop and how long to poll."""

    def __init__(self, batch_id: str, timeout: float | None, progress: bool) -> None:
        self.batch_id, self.timeout = batch_id, timeout
        self.deadline = protocol.Deadline(timeout)
        self.bar = ProgressBar(progress, f"batch {batch_id[:8]}")
        # With a bar, the first answer comes at once so the bar appears at once.
        self.wait = 0.0 if progress else self.deadline.next_wait()

    def seen(self, body: dict[str, Any]) -> BatchState | None:
        """The batch's state once it is done; None to poll again (`self.wait` seconds)."""
        state = BatchState.from_json(body)
        self.bar.update(state.finished, state.total, state.failed)
        if state.done:
            return state
        if self.deadline.expired:
            raise WaitTimeout(
                f"batch {self.batch_id}: {state.finished} of {state.total} tasks finished after {self.timeout} s"
            )
        shown = self.bar.shown
        self.wait = self.deadline.next_wait(protocol.PROGRESS_POLL_SECONDS if shown else protocol.LONG_POLL_SECONDS)
        return None


class BatchView:
    def __init__(self, batch_id: str, task_ids: list[str] | None = None, state: BatchState | None = None) -> None:
        self.id = batch_id
        # Known when this client submitted the batch; `tasks()` reads them from the service otherwise.
        self.task_ids = task_ids
        self.state = state

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r})"


class Batch(BatchView):
    """A batch of a `Client`."""

    def __init__(self, transport: Transport, batch_id: str, task_ids: list[str] | None = None) -> None:
        super().__init__(batch_id, task_ids)
        self._transport = transport

    def refresh(self) -> BatchState:
        self.state = BatchState.from_json(self._transport.send(protocol.get_batch(self.id)))
        return self.state

    def wait(self, timeout: float | None = None, progress: bool = True) -> Batch:
        """Until every task is final. `progress`: a bar in a terminal (on stderr) or in Jupyter, and
        none when stderr is not a terminal. `WaitTimeout` after `timeout` seconds."""
        waiting = _Waiting(self.id, timeout, progress)
        with waiting.bar:
            while True:
                state = waiting.seen(self._transport.send(protocol.get_batch(self.id, waiting.wait)))
                if state is not None:
                    self.state = state
                    return self

    def tasks(self) -> Iterator[Task]:
        """Every task of the batch with its outcome as it is now, in the order they were submitted."""
        return paged_tasks(self._transport, protocol.batch_tasks(self.id))

    def cancel(self) -> BatchState:
        """Cancel every task not final yet (running ones are stopped within about a second)."""
        self.state = BatchState.from_json(self._transport.send(protocol.cancel_batch(self.id)))
        return self.state


class AsyncBatch(BatchView):
    """A batch of an `AsyncClient`: the same as `Batch`, with coroutines."""

    def __init__(self, transport: AsyncTransport, batch_id: str, task_ids: list[str] | None = None) -> None:
        super().__init__(batch_id, task_ids)
        self._transport = transport

    async def refresh(self) -> BatchState:
        self.state = BatchState.from_json(await self._transport.send(protocol.get_batch(self.id)))
        return self.state

    async def wait(self, timeout: float | None = None, progress: bool = True) -> AsyncBatch:
        waiting = _Waiting(self.id, timeout, progress)
        with waiting.bar:
            while True:
                state = waiting.seen(await self._transport.send(protocol.get_batch(self.id, waiting.wait)))
                if state is not None:
                    self.state = state
                    return self

    async def tasks(self) -> AsyncIterator[AsyncTask]:
        async for task in apaged_tasks(self._transport, protocol.batch_tasks(self.id)):
            yield task

    async def cancel(self) -> BatchState:
        self.state = BatchState.from_json(await self._transport.send(protocol.cancel_batch(self.id)))
        return self.state
