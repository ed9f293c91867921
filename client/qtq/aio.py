"""The asyncio client: `Client`'s methods as coroutines (and `list` as an async iterator)."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

from qtq import _protocol as protocol
from qtq._http import DEFAULT_TIMEOUT, AsyncTransport, Endpoint, Retry
from qtq.batch import AsyncBatch
from qtq.circuits import Circuit
from qtq.task import AsyncTask, apaged_tasks


class AsyncClient:
    """A connection to one Quantum Task Queue service, for asyncio; see `Client` for the arguments."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        retries: int = Retry.retries,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._transport = AsyncTransport(Endpoint.resolve(url, api_key, timeout), Retry(retries), transport)

    @property
    def url(self) -> str:
        return self._transport.endpoint.url

    async def submit(
        self,
        circuit: Circuit,
        *,
        shots: int | None = None,
        seed: int | None = None,
        parameters: Mapping[Any, Any] | None = None,
        observables: Sequence[Any] | None = None,
        memory: bool | None = None,
        method: str | None = None,
        noise: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> AsyncTask:
        """Queue a circuit; see `Client.submit`."""
        body = protocol.task_body(
            circuit,
            shots=shots,
            seed=seed,
            parameters=parameters,
            observables=observables,
            memory=memory,
            method=method,
            noise=noise,
            tags=tags,
        )
        return AsyncTask(self._transport, await self._transport.send(protocol.submit_task(body, idempotency_key)))

    async def get(self, task_id: str) -> AsyncTask:
        return AsyncTask(self._transport, await self._transport.send(protocol.get_task(task_id)))

    async def list(
        self,
        *,
        status: str | None = None,
        tag: Mapping[str, str] | str | Iterable[str] | None = None,
        batch_id: str | None = None,
        page_size: int = protocol.PAGE_SIZE,
    ) -> AsyncIterator[AsyncTask]:
        """`async for task in client.list(...)`: newest first, a page at a time; see `Client.list`."""
        async for task in apaged_tasks(self._transport, protocol.list_tasks(status, tag, batch_id, page_size)):
            yield task

    async def cancel(self, task_id: str) -> AsyncTask:
        return await AsyncTask(self._transport, {"task_id": task_id, "status": "submitted"}).cancel()

    async def submit_batch(
        self,
        items: Iterable[Circuit | Mapping[str, Any]],
        *,
        shots: int | None = None,
        seed: int | None = None,
        memory: bool | None = None,
        method: str | None = None,
        noise: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> AsyncBatch:
        """Queue many tasks in one request; see `Client.submit_batch`."""
        defaults = {"shots": shots, "seed": seed, "memory": memory, "method": method, "noise": noise}
        answer = await self._transport.send(protocol.submit_batch(items, defaults, tags, idempotency_key))
        return AsyncBatch(self._transport, answer["batch_id"], builtins.list(answer["task_ids"]))

    async def get_batch(self, batch_id: str) -> AsyncBatch:
        batch = AsyncBatch(self._transport, batch_id)
        await batch.refresh()
        return batch

    async def limits(self) -> dict[str, int]:
        """GET /limits; see `Client.limits`."""
        return dict(await self._transport.send(protocol.get_limits()))

    async def aclose(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.aclose()
