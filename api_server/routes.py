"""Task routes: thin, typed, no SQL."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import StringConstraints
from starlette.concurrency import run_in_threadpool

from api_server import circuit_text
from api_server.auth import Caller, CallerDep
from api_server.circuit_text import SeedQuery, ShotsQuery, TagQuery
from api_server.deps import SettingsDep, StoreDep, WatcherDep
from api_server.schemas import (
    ERROR_RESPONSES,
    MAX_WAIT_SECONDS,
    WRITE_ERROR_RESPONSES,
    CircuitView,
    Conflict,
    Message,
    TaskAccepted,
    TaskCreate,
    TaskList,
    TaskPublic,
)
from api_server.submissions import IdempotencyKey, accept_task, refuse
from api_server.task_options import MAX_TAGS
from api_server.views import CURSOR_PATTERN, decode_cursor, encode_cursor, list_item, public_view
from api_server.waiters import ShuttingDown
from shared.models import Task, TaskStatus

logger = logging.getLogger(__name__)
router = APIRouter()

NOT_FOUND = "Task not found"
NOT_FOUND_RESPONSE: dict[int | str, dict[str, Any]] = {404: {"model": Message, "description": "No task has this id."}}
# A key (its first character not a colon) and the colon after it: split there.
TAG_FILTER_PATTERN = r"^[A-Za-z0-9_.-][A-Za-z0-9_.:-]{0,63}:"


def _task_response(task: Task, caller: Caller, status_code: int = 200) -> JSONResponse:
    return JSONResponse(status_code=status_code, content=public_view(task, show_owner=caller.admin))


def _visible(task: Task | None, caller: Caller) -> Task:
    """The task, if it exists and the caller may see it; else the 404 an unknown id gets."""
    if task is None or not caller.may_see(task.owner):
        raise HTTPException(404, NOT_FOUND)
    return task


def owner_filter(caller: Caller, owner: str | None) -> str | None:
    """Whose tasks a list shows: the caller's own, or (admins, open mode) everyone's or the named key's."""
    if caller.sees_all:
        return owner
    if owner is not None and owner != caller.name:
        raise HTTPException(403, "only admin keys list the tasks of other keys (leave out owner)")
    return caller.name


@router.get(
    "/tasks",
    response_model=TaskList,
    response_model_exclude_none=True,
    summary="List tasks, newest first",
    responses=ERROR_RESPONSES,
)
def list_tasks(
    caller: CallerDep,
    store: StoreDep,
    status: Annotated[TaskStatus | None, Query(description="Only tasks in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size, 1 to 500.")] = 50,
    cursor: Annotated[
        str | None, Query(description="`next_cursor` of the previous page.", pattern=CURSOR_PATTERN)
    ] = None,
    batch_id: Annotated[str | None, Query(description="Only the tasks of this batch.", max_length=100)] = None,
    tag: Annotated[
        list[Annotated[str, StringConstraints(pattern=TAG_FILTER_PATTERN)]] | None,
        Query(
            description="`key:value` (split at the first colon); repeat it for tasks carrying every one.",
            max_length=MAX_TAGS,
        ),
    ] = None,
    owner: Annotated[
        str | None, Query(description="Admin keys only: the tasks of the key with this name.", max_length=64)
    ] = None,
) -> TaskList:
    """Keyset pagination: pages stay stable while new tasks arrive. A key sees its own tasks; an
    admin key sees every key's (`owner` narrows them to one)."""
    before = decode_cursor(cursor) if cursor is not None else None
    # The pattern ensures a key and a colon: split there.
    wanted = [(key, value) for key, _, value in (given.partition(":") for given in tag or [])]
    items, next_seq = store.list_tasks(status, before, limit, wanted, batch_id, owner_filter(caller, owner))
    return TaskList(
        items=[list_item(t, caller.admin) for t in items],
        next_cursor=encode_cursor(next_seq) if next_seq is not None else None,
    )


@router.post(
    "/tasks",
    status_code=202,
    response_model=TaskAccepted,
    summary="Submit a circuit",
    responses={
        202: {
            "headers": {
                "Location": {"description": "/tasks/{task_id}", "schema": {"type": "string"}},
                "Idempotent-Replayed": {
                    "description": "`true` when this answers an earlier request with the same Idempotency-Key.",
                    "schema": {"type": "string"},
                },
            }
        },
        409: {"model": Message, "description": "The Idempotency-Key was already used with a different request."},
        413: {"model": Message, "description": "The circuit is over MAX_CIRCUIT_BYTES, or the body is far too large."},
        **WRITE_ERROR_RESPONSES,
        415: {
            "model": Message,
            "description": "The body is neither `application/json` nor the circuit as `text/plain` or "
            "`application/qasm` (UTF-8).",
        },
        **ERROR_RESPONSES,
        503: {
            "model": Message,
            "description": "The database is busy or unreachable, or the circuits waiting to run already fill "
            "MAX_QUEUED_BYTES; retry after `Retry-After` seconds.",
        },
    },
    openapi_extra=circuit_text.OPENAPI_BODY,
)
def submit_task(
    caller: CallerDep,
    body: TaskCreate,
    store: StoreDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
    # Declared so that /openapi.json documents them (with the text body); a JSON body carries its own.
    shots: ShotsQuery = None,
    seed: SeedQuery = None,
    tag: TagQuery = None,
) -> JSONResponse:
    """Queue an OpenQASM circuit; the task is stored durably before the 202 is sent.

    The body is JSON, or the circuit alone as `text/plain` or `application/qasm` with `shots`,
    `seed` and `tag=key:value` in the query (api_server.circuit_text takes that form)."""
    for name, value in (("shots", shots), ("seed", seed), ("tag", tag)):
        if value is not None:
            # Ignoring it would run the JSON body's value (or the default) without a word.
            refuse(("query",), name, "is a query parameter only for a circuit sent as text; put it in the JSON body")
    return accept_task(body, store, settings, caller, idempotency_key)


@router.get(
    "/tasks/{task_id}/circuit",
    response_model=CircuitView,
    response_model_exclude_none=True,
    summary="Get a task's circuit text and drawing",
    responses={**NOT_FOUND_RESPONSE, **ERROR_RESPONSES},
)
def get_circuit(task_id: str, caller: CallerDep, store: StoreDep) -> CircuitView:
    """The submitted text, and Qiskit's text diagram once a worker has parsed the circuit."""
    found = store.get_circuit(task_id)
    if found is None or not caller.may_see(found[2]):
        raise HTTPException(404, NOT_FOUND)
    circuit, diagram, _ = found
    return CircuitView(task_id=task_id, circuit=circuit, diagram=diagram)


@router.post(
    "/tasks/{task_id}/cancel",
    response_model=TaskPublic,
    response_model_exclude_none=True,
    summary="Cancel a task",
    responses={
        200: {"description": "The task was waiting and is now `cancelled`."},
        202: {"model": TaskPublic, "description": "The task is running; its worker stops it within about a second."},
        409: {"model": Conflict, "description": "The task is already completed, failed or cancelled."},
        **NOT_FOUND_RESPONSE,
        **WRITE_ERROR_RESPONSES,
        **ERROR_RESPONSES,
    },
)
def cancel_task(task_id: str, caller: CallerDep, store: StoreDep) -> JSONResponse:
    """A submitted task is cancelled at once; a pending one is stopped by its worker."""
    if not caller.sees_all:
        # Another key's task is answered as if it did not exist (its owner never changes).
        _visible(store.get_task(task_id), caller)
    outcome = store.cancel(task_id, time.time())
    if outcome is None:
        raise HTTPException(404, NOT_FOUND)
    if not outcome.changed:
        return JSONResponse(
            status_code=409,
            content={"detail": f"Task is already {outcome.status.value}", "status": outcome.status.value},
        )
    task = store.get_task(task_id)
    assert task is not None  # it existed an instant ago, and tasks are never deleted while live
    logger.info("task %s %s", task_id, "cancelled" if outcome.status is TaskStatus.CANCELLED else "cancel requested")
    return _task_response(task, caller, 200 if outcome.status is TaskStatus.CANCELLED else 202)


@router.get(
    "/tasks/{task_id:path}",
    response_model=TaskPublic,
    response_model_exclude_none=True,
    response_class=JSONResponse,
    summary="Get a task's state and outcome",
    responses={**NOT_FOUND_RESPONSE, **ERROR_RESPONSES},
)
async def get_task(
    task_id: str,
    caller: CallerDep,
    store: StoreDep,
    watcher: WatcherDep,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=MAX_WAIT_SECONDS,
            description="Long-poll: answer as soon as the task is finished, or after this many seconds.",
        ),
    ] = 0,
) -> JSONResponse:
    """State, timestamps, and the counts (completed) or the error (failed).

    With `wait`, the answer comes when the task reaches a final state (or the time is up), so a
    client needs one request instead of a polling loop. The `:path` converter lets ids with
    slashes reach this route, so every unknown id gets the same 404 body.
    """
    if wait <= 0:
        return _task_response(_visible(await run_in_threadpool(store.get_task, task_id), caller), caller)
    with watcher.waiter(task_id) as finished:
        task = _visible(await run_in_threadpool(store.get_task, task_id), caller)
        if not task.status.is_terminal:
            try:
                task = await asyncio.wait_for(finished, wait)  # as the watcher read it
            except (TimeoutError, ShuttingDown):
                latest = await run_in_threadpool(store.get_task, task_id)
                task = latest or task
    return _task_response(task, caller)
