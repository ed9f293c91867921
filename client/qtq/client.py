"""The synchronous client: submit circuits, read, list and cancel tasks, submit batches."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

from qtq import _protocol as protocol
from qtq._http import DEFAULT_TIMEOUT, Endpoint, Retry, Transport
from qtq.batch import Batch
from qtq.circuits import Circuit
from qtq.task import Task, paged_tasks


class Client:
    """A connection to one Quantum Task Queue service.

    `url` defaults to `QTQ_URL` (else http://127.0.0.1:8000) and `api_key` to `QTQ_API_KEY`, sent as
    `Authorization: Bearer …`. `timeout` is each request's, in seconds (a long-poll adds its wait).
    Connection errors, `503` and `429` are retried up to `retries` times with backoff, honouring
    `Retry-After`; every POST carries an Idempotency-Key, so a retry never runs a circuit twice.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        retries: int = Retry.retries,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._transport = Transport(Endpoint.resolve(url, api_key, timeout), Retry(retries), transport)

    @property
    def url(self) -> str:
        return self._transport.endpoint.url

    def submit(
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
    ) -> Task:
        """Queue a circuit (OpenQASM text or a `qiskit.QuantumCircuit`); the options are the README's
        request fields. Returns at once; `task.result()` waits for the counts."""
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
        return Task(self._transport, self._transport.send(protocol.submit_task(body, idempotency_key)))

    def get(self, task_id: str) -> Task:
        """The task as it is now; `NotFound` for an unknown id."""
        return Task(self._transport, self._transport.send(protocol.get_task(task_id)))

    def list(
        self,
        *,
        status: str | None = None,
        tag: Mapping[str, str] | str | Iterable[str] | None = None,
        batch_id: str | None = None,
        page_size: int = protocol.PAGE_SIZE,
    ) -> Iterator[Task]:
        """Tasks newest first, read a page at a time as the iteration goes. `tag`: `{"key": "value"}`
        or `"key:value"`; a task must carry every tag given. Items hold no circuit or result:
        `task.refresh()` reads the whole task."""
        return paged_tasks(self._transport, protocol.list_tasks(status, tag, batch_id, page_size))

    def cancel(self, task_id: str) -> Task:
        """Cancel a task (see `Task.cancel`)."""
        return Task(self._transport, {"task_id": task_id, "status": "submitted"}).cancel()

    def submit_batch(
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
    ) -> Batch:
        """Queue many tasks in one request, all or none. An item is a circuit, or a mapping of
        `submit`'s arguments (`{"circuit": …, "shots": 10}`); `shots`, `seed`, `memory`, `method` and
        `noise` apply to items that do not set them; `tags` label the batch."""
        defaults = {"shots": shots, "seed": seed, "memory": memory, "method": method, "noise": noise}
        answer = self._transport.send(protocol.submit_batch(items, defaults, tags, idempotency_key))
        return Batch(self._transport, answer["batch_id"], builtins.list(answer["task_ids"]))

    def get_batch(self, batch_id: str) -> Batch:
        """A batch by its id, with its state as it is now; `NotFound` for an unknown id."""
        batch = Batch(self._transport, batch_id)
        batch.refresh()
        return batch

    def limits(self) -> dict[str, int]:
        """GET /limits: the limits the service enforces (`max_qubits`, `max_shots`, `max_batch_tasks`, ...)."""
        return dict(self._transport.send(protocol.get_limits()))

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
