"""One submission's checks against the app's settings, for POST /tasks and each task of a batch,
and the storing of one task, whichever form (JSON or the circuit as text) its request took."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Annotated, NoReturn

from fastapi import Header, HTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api_server.auth import Caller
from api_server.schemas import TaskCreate
from api_server.task_options import TaskOptions
from shared.config import Settings
from shared.ids import new_id
from shared.models import NewTask, SubmitOutcome, TaskStatus, sweep_points
from shared.store import Store

logger = logging.getLogger(__name__)

OPTION_FIELDS = set(TaskOptions.model_fields)
QUEUE_FULL_RETRY_SECONDS = 5

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[ -~]+$",
        description="Any 1 to 255 printable ASCII characters. A retry with the same key and body within "
        "IDEMPOTENCY_TTL_HOURS answers the first 202 again (with `Idempotent-Replayed: true`) and creates "
        "nothing; the same key with another body is a 409.",
    ),
]


def request_hash(path: str, body: BaseModel) -> str:
    """What an Idempotency-Key is bound to: the endpoint and the request as validated (so the
    order of the JSON keys does not matter)."""
    canonical = json.dumps(body.model_dump(mode="json", exclude_unset=True), sort_keys=True)
    return hashlib.sha256(f"{path}\n{canonical}".encode()).hexdigest()


def key_conflict(key: str) -> HTTPException:
    return HTTPException(409, f'Idempotency-Key "{key}" was already used with a different request')


def refuse(where: tuple[str | int, ...], field: str | int, message: str, kind: str = "value_error") -> NoReturn:
    """A 422 naming the field, in the same form as the schema's own refusals."""
    raise RequestValidationError([{"type": kind, "loc": (*where, field), "msg": message, "input": None}])


def new_task(
    body: TaskCreate, settings: Settings, where: tuple[str | int, ...] = ("body",), owner: str = ""
) -> NewTask:
    """The task to store, or a 422 (413 for the circuit's size) naming what exceeds which setting."""
    shots = body.shots if body.shots is not None else settings.default_shots
    if shots > settings.max_shots:
        refuse(where, "shots", f"Input should be less than or equal to {settings.max_shots}", "less_than_equal")
    points = sweep_points(body.parameters)
    if points > settings.max_sweep_points:
        refuse(
            where, "parameters", f"a sweep of {points} points is more than MAX_SWEEP_POINTS={settings.max_sweep_points}"
        )
    if body.observables and len(body.observables) > settings.max_observables:
        refuse(
            where,
            "observables",
            f"{len(body.observables)} observables are more than MAX_OBSERVABLES={settings.max_observables}",
        )
    if body.memory and shots * points > settings.max_memory_shots:
        refuse(
            where,
            "memory",
            f"{shots} shots x {points} points = {shots * points} outcomes is more than "
            f"MAX_MEMORY_SHOTS={settings.max_memory_shots}; ask for fewer shots or points",
        )
    size = len(body.circuit.encode("utf-8"))
    if size > settings.max_circuit_bytes:
        which = f"task {where[-1]}: " if len(where) > 1 else ""
        raise HTTPException(
            413, f"{which}circuit is {size} bytes; the limit is MAX_CIRCUIT_BYTES={settings.max_circuit_bytes}"
        )
    options = body.model_dump(include=OPTION_FIELDS, exclude_defaults=True, exclude_none=True)
    return NewTask(body.circuit, shots, body.seed, options or None, body.tags or None, owner)


def queue_full(store: Store, settings: Settings, what: str) -> HTTPException:
    """The 503 for a submission that MAX_QUEUED_BYTES leaves no room for (nothing was stored)."""
    return HTTPException(
        503,
        f"the queue already holds {store.queued_bytes()} bytes of circuits waiting or running, and {what} "
        f"would pass MAX_QUEUED_BYTES={settings.max_queued_bytes}; retry when some have finished",
        headers={"Retry-After": str(QUEUE_FULL_RETRY_SECONDS)},
    )


def accept_task(
    body: TaskCreate,
    store: Store,
    settings: Settings,
    caller: Caller,
    idempotency_key: str | None,
    where: tuple[str | int, ...] = ("body",),
) -> JSONResponse:
    """Store one task (or answer its Idempotency-Key's first request again): the 202 of POST /tasks.

    `where` is where the request carried the options (`("query",)` for a circuit sent as text), so
    a refusal names the parameter the client wrote."""
    task = new_task(body, settings, where, owner=caller.name)
    size = len(task.circuit.encode("utf-8"))
    task_id = new_id()
    headers = {}
    if idempotency_key is None:
        created = store.create_task(task_id, task, time.time(), settings.max_queued_bytes, caller.quota(settings))
    else:
        outcome, task_id = store.create_task_once(
            idempotency_key,
            request_hash("/tasks", body),
            task_id,
            task,
            time.time(),
            settings.max_queued_bytes,
            settings.idempotency_ttl_hours * 3600,
            caller.quota(settings),
        )
        if outcome is SubmitOutcome.CONFLICT:
            raise key_conflict(idempotency_key)
        if outcome is SubmitOutcome.REPLAYED:
            logger.info("task %s: submission replayed for its Idempotency-Key", task_id)
            headers["Idempotent-Replayed"] = "true"
        created = outcome is not SubmitOutcome.QUEUE_FULL
    if not created:
        raise queue_full(store, settings, f"this {size}-byte circuit")
    if not headers:
        logger.info("task %s submitted: %d bytes, %d shots", task_id, size, task.shots)
    return JSONResponse(
        status_code=202,
        content={"task_id": task_id, "status": TaskStatus.SUBMITTED.value},
        headers={"Location": f"/tasks/{task_id}", **headers},
    )
