"""What to send for each operation and what the answers mean.

No I/O here: the sync and the async client build the same `Call`s and read the same answers, and
differ only in how they send a call and how they sleep.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from qtq.circuits import Circuit, to_qasm

TERMINAL = frozenset({"completed", "failed", "cancelled"})
# One long-poll request: the service holds it up to 60 s; shorter keeps idle proxies from cutting it.
LONG_POLL_SECONDS = 30.0
# How often a progress bar is brought up to date.
PROGRESS_POLL_SECONDS = 0.5
PAGE_SIZE = 100
# The keyword arguments of `submit` that a batch item may give, beside `circuit`.
TASK_FIELDS = ("shots", "seed", "parameters", "observables", "memory", "method", "noise", "tags")


@dataclass(frozen=True)
class Call:
    """One request: sent as it is on every retry, so a POST keeps its Idempotency-Key."""

    method: str
    path: str
    params: Sequence[tuple[str, str | int | float]] = ()
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    # Seconds the service may hold the answer (long-poll): added to the read timeout.
    wait: float = 0.0


def _post(path: str, body: Any = None, idempotency_key: str | None = None) -> Call:
    # Every POST carries a key, generated once here: a retry of this Call can never act twice.
    key = idempotency_key if idempotency_key is not None else str(uuid.uuid4())
    return Call("POST", path, json=body, headers={"Idempotency-Key": key})


def _id(value: str) -> str:
    return quote(value, safe="")


def task_body(
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
) -> dict[str, Any]:
    """The JSON body of one task (POST /tasks, or one item of POST /batches); unset fields are left out."""
    text, named = to_qasm(circuit, parameters)
    body: dict[str, Any] = {"circuit": text}
    given = {
        "shots": shots,
        "seed": seed,
        "parameters": named,
        "observables": list(observables) if observables is not None else None,
        "memory": memory,
        "method": method,
        "noise": dict(noise) if noise is not None else None,
        "tags": dict(tags) if tags is not None else None,
    }
    body.update({key: value for key, value in given.items() if value is not None})
    return body


def submit_task(body: dict[str, Any], idempotency_key: str | None = None) -> Call:
    return _post("/tasks", body, idempotency_key)


def get_task(task_id: str, wait: float = 0.0) -> Call:
    params: list[tuple[str, str | int | float]] = [("wait", wait)] if wait > 0 else []
    return Call("GET", f"/tasks/{_id(task_id)}", params=params, wait=wait)


def cancel_task(task_id: str) -> Call:
    return _post(f"/tasks/{_id(task_id)}/cancel")


def list_tasks(
    status: str | None, tag: Mapping[str, str] | str | Iterable[str] | None, batch_id: str | None, limit: int
) -> Call:
    """The first page; `next_page` gives the ones after it."""
    params: list[tuple[str, str | int | float]] = [("limit", limit)]
    if status is not None:
        params.append(("status", status))
    if batch_id is not None:
        params.append(("batch_id", batch_id))
    params += [("tag", value) for value in tag_filters(tag)]
    return Call("GET", "/tasks", params=params)


def tag_filters(tag: Mapping[str, str] | str | Iterable[str] | None) -> list[str]:
    """`{"project": "vqe"}` or `"project:vqe"` (or several of those strings) as the API's `key:value` filters."""
    if tag is None:
        return []
    if isinstance(tag, str):
        return [tag]
    if isinstance(tag, Mapping):
        return [f"{key}:{value}" for key, value in tag.items()]
    return list(tag)


def next_page(call: Call, cursor: str) -> Call:
    params = [(key, value) for key, value in call.params if key != "cursor"]
    return Call(call.method, call.path, params=[*params, ("cursor", cursor)])


def page(body: Mapping[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """A page's items and the cursor of the next page (None on the last)."""
    return list(body.get("items", [])), body.get("next_cursor")


def submit_batch(
    items: Iterable[Circuit | Mapping[str, Any]],
    defaults: Mapping[str, Any],
    tags: Mapping[str, str] | None,
    idempotency_key: str | None,
) -> Call:
    """POST /batches: each item is a circuit, or a mapping of `submit`'s arguments (`circuit` required);
    `defaults` fill what an item leaves out."""
    bodies = []
    for index, item in enumerate(items):
        given = dict(item) if isinstance(item, Mapping) else {"circuit": item}
        unknown = set(given) - {"circuit", *TASK_FIELDS}
        if unknown or "circuit" not in given:
            problem = f"unknown keys {sorted(unknown)}" if unknown else "no 'circuit'"
            raise ValueError(
                f"batch item {index}: {problem}; an item is a circuit or a mapping of submit()'s arguments"
            )
        options = {key: value for key, value in defaults.items() if value is not None}
        options.update({key: value for key, value in given.items() if key != "circuit"})
        bodies.append(task_body(given["circuit"], **options))
    if not bodies:
        raise ValueError("a batch needs at least one task")
    body: dict[str, Any] = {"tasks": bodies}
    if tags:
        body["tags"] = dict(tags)
    return _post("/batches", body, idempotency_key)


def get_batch(batch_id: str, wait: float = 0.0) -> Call:
    params: list[tuple[str, str | int | float]] = [("wait", wait)] if wait > 0 else []
    return Call("GET", f"/batches/{_id(batch_id)}", params=params, wait=wait)


def batch_tasks(batch_id: str, limit: int = PAGE_SIZE) -> Call:
    return Call("GET", f"/batches/{_id(batch_id)}/tasks", params=[("limit", limit)])


def cancel_batch(batch_id: str) -> Call:
    return _post(f"/batches/{_id(batch_id)}/cancel")


def get_limits() -> Call:
    return Call("GET", "/limits")


def already_cancelled(body: Any) -> bool:
    """A 409 to a cancel that says the task is cancelled: the cancel (maybe our own lost answer) took."""
    return isinstance(body, Mapping) and body.get("status") == "cancelled"


class Deadline:
    """When a wait gives up, and how long each long-poll of it may last."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self._end = math.inf if timeout is None else time.monotonic() + max(0.0, timeout)

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self._end

    def next_wait(self, longest: float = LONG_POLL_SECONDS) -> float:
        """Seconds for the next long-poll: `longest`, or what is left if that is less."""
        return round(max(0.0, min(longest, self._end - time.monotonic())), 3)
