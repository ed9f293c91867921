"""Batch routes: many circuits submitted, watched, paged and cancelled as one unit."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api_server.auth import Caller, CallerDep
from api_server.batch_schemas import BatchAccepted, BatchCreate, BatchPublic, BatchTaskList
from api_server.deps import SettingsDep, StoreDep, WatcherDep
from api_server.schemas import ERROR_RESPONSES, MAX_WAIT_SECONDS, WRITE_ERROR_RESPONSES, Message
from api_server.submissions import IdempotencyKey, key_conflict, new_task, queue_full, refuse, request_hash
from api_server.views import CURSOR_PATTERN, batch_view, decode_cursor, encode_cursor, public_view
from shared.ids import new_id
from shared.models import Batch, SubmitOutcome, TaskStatus

logger = logging.getLogger(__name__)
router = APIRouter()

NOT_FOUND = "Batch not found"
NOT_FOUND_RESPONSE: dict[int | str, dict[str, Any]] = {404: {"model": Message, "description": "No batch has this id."}}


@router.post(
    "/batches",
    status_code=202,
    response_model=BatchAccepted,
    summary="Submit many circuits as one batch",
    responses={
        202: {"headers": {"Location": {"description": "/batches/{batch_id}", "schema": {"type": "string"}}}},
        409: {"model": Message, "description": "The Idempotency-Key was already used with a different request."},
        413: {
            "model": Message,
            "description": "A circuit is over MAX_CIRCUIT_BYTES, or the body over MAX_BATCH_BYTES.",
        },
        **WRITE_ERROR_RESPONSES,
        **ERROR_RESPONSES,
    },
)
def submit_batch(
    caller: CallerDep,
    body: BatchCreate,
    store: StoreDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Store every task of the batch in one transaction, in request order, or none of them (a
    batch that would pass the key's max_queued is refused whole: a 429 while the key's queued tasks
    leave no room, a 422 when the batch alone is more than max_queued)."""
    if len(body.tasks) > settings.max_batch_tasks:
        refuse(("body",), "tasks", f"{len(body.tasks)} tasks are more than MAX_BATCH_TASKS={settings.max_batch_tasks}")
    quota = caller.quota(settings)
    if quota is not None and len(body.tasks) > quota:
        # Never a 429: no wait would make room for it.
        refuse(
            ("body",),
            "tasks",
            f"{len(body.tasks)} tasks are more than key {caller.name!r} may have queued at once "
            f"(max_queued={quota}); send them in batches of at most {quota}",
        )
    tasks = [
        (new_id(), new_task(task, settings, ("body", "tasks", i), owner=caller.name))
        for i, task in enumerate(body.tasks)
    ]
    idempotency = None
    if idempotency_key is not None:
        idempotency = (idempotency_key, request_hash("/batches", body), settings.idempotency_ttl_hours * 3600)
    outcome, batch_id = store.create_batch(
        new_id(), tasks, body.tags or None, time.time(), settings.max_queued_bytes, idempotency, quota
    )
    if outcome is SubmitOutcome.QUEUE_FULL:
        raise queue_full(store, settings, "this batch")
    if outcome is SubmitOutcome.CONFLICT:
        assert idempotency_key is not None
        raise key_conflict(idempotency_key)
    headers = {"Location": f"/batches/{batch_id}"}
    if outcome is SubmitOutcome.REPLAYED:
        headers["Idempotent-Replayed"] = "true"
        task_ids = _task_ids(store, batch_id)
        logger.info("batch %s: submission replayed for its Idempotency-Key", batch_id)
    else:
        task_ids = [task_id for task_id, _ in tasks]
        logger.info("batch %s submitted: %d tasks", batch_id, len(tasks))
    return JSONResponse(
        status_code=202,
        content={"batch_id": batch_id, "task_ids": task_ids, "status": TaskStatus.SUBMITTED},
        headers=headers,
    )


def _task_ids(store: Any, batch_id: str) -> list[str]:
    """The ids of a stored batch's tasks, in request order (for a replayed answer)."""
    ids: list[str] = []
    after = -1
    while True:
        tasks, last = store.batch_tasks(batch_id, after, 1000)
        ids += [task.id for task in tasks]
        if last is None:
            return ids
        after = last


@router.get(
    "/batches/{batch_id}",
    response_model=BatchPublic,
    response_model_exclude_none=True,
    summary="Get a batch's progress",
    responses={**NOT_FOUND_RESPONSE, **ERROR_RESPONSES},
)
async def get_batch(
    batch_id: str,
    caller: CallerDep,
    store: StoreDep,
    watcher: WatcherDep,
    wait: Annotated[
        float,
        Query(ge=0, le=MAX_WAIT_SECONDS, description="Long-poll: answer once every task is final, or after this."),
    ] = 0,
) -> JSONResponse:
    """Counts by state; with `wait`, the answer comes when the batch is done or the time is up."""
    deadline = time.monotonic() + wait
    batch = await _batch(store, batch_id, caller)
    pause = 0.005
    while not batch.done and time.monotonic() < deadline and not watcher.stopping:
        await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 1.5, 0.25)
        batch = await _batch(store, batch_id, caller)
    return JSONResponse(batch_view(batch, show_owner=caller.admin))


@router.get(
    "/batches/{batch_id}/tasks",
    response_model=BatchTaskList,
    response_model_exclude_none=True,
    summary="Page through a batch's tasks, results included, in request order",
    responses={**NOT_FOUND_RESPONSE, **ERROR_RESPONSES},
)
def batch_tasks(
    batch_id: str,
    caller: CallerDep,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size, 1 to 500.")] = 100,
    cursor: Annotated[
        str | None, Query(description="`next_cursor` of the previous page.", pattern=CURSOR_PATTERN)
    ] = None,
) -> JSONResponse:
    _visible(store.get_batch(batch_id), caller)
    after = decode_cursor(cursor) if cursor is not None else -1
    tasks, last = store.batch_tasks(batch_id, after, limit)
    page: dict[str, Any] = {"items": [public_view(task, show_owner=caller.admin) for task in tasks]}
    if last is not None:
        page["next_cursor"] = encode_cursor(last)
    return JSONResponse(page)


@router.post(
    "/batches/{batch_id}/cancel",
    response_model=BatchPublic,
    response_model_exclude_none=True,
    summary="Cancel every task of a batch that is not final yet",
    responses={**NOT_FOUND_RESPONSE, **WRITE_ERROR_RESPONSES, **ERROR_RESPONSES},
)
def cancel_batch(batch_id: str, caller: CallerDep, store: StoreDep) -> JSONResponse:
    """Waiting tasks are cancelled at once; running ones are stopped by their workers within about a second."""
    _visible(store.get_batch(batch_id), caller)
    store.cancel_batch(batch_id, time.time())
    logger.info("batch %s: cancel requested", batch_id)
    batch = store.get_batch(batch_id)
    assert batch is not None
    return JSONResponse(batch_view(batch, show_owner=caller.admin))


def _visible(batch: Batch | None, caller: Caller) -> Batch:
    """The batch, or the 404 of a batch that does not exist when it is another key's."""
    if batch is None or not caller.may_see(batch.owner):
        raise HTTPException(404, NOT_FOUND)
    return batch


async def _batch(store: Any, batch_id: str, caller: Caller) -> Batch:
    return _visible(await run_in_threadpool(store.get_batch, batch_id), caller)
