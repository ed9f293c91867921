"""HTTP routes: thin, typed, no SQL."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timezone

from fastapi import APIRouter, HTTPException, Response
from fastapi.responses import JSONResponse

from api_server.deps import SettingsDep, StoreDep
from api_server.schemas import ERROR_RESPONSES, Health, Message, TaskAccepted, TaskCreate, TaskPublic
from shared.models import Task, TaskStatus

logger = logging.getLogger(__name__)
router = APIRouter()

NOT_FOUND = "Task not found"


def _timestamp(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=timezone.utc) if value is not None else None


def to_public(task: Task) -> TaskPublic:
    fields = task.public_fields()
    for key in ("created_at", "started_at", "finished_at"):
        fields[key] = _timestamp(fields[key])
    return TaskPublic(**fields)


@router.post(
    "/tasks",
    status_code=202,
    response_model=TaskAccepted,
    summary="Submit a circuit",
    responses={
        202: {"headers": {"Location": {"description": "/tasks/{task_id}", "schema": {"type": "string"}}}},
        413: {"model": Message, "description": "The circuit is over MAX_CIRCUIT_BYTES, or the body is far too large."},
        **ERROR_RESPONSES,
    },
)
def submit_task(body: TaskCreate, store: StoreDep, settings: SettingsDep) -> JSONResponse:
    """Queue an OpenQASM circuit; the task is stored durably before the 202 is sent."""
    size = len(body.circuit.encode("utf-8"))
    if size > settings.max_circuit_bytes:
        raise HTTPException(413, f"circuit is {size} bytes; the limit is MAX_CIRCUIT_BYTES={settings.max_circuit_bytes}")
    task_id = str(uuid.uuid4())
    store.create_task(task_id, body.circuit, body.shots, body.seed, time.time())
    logger.info("task %s submitted: %d bytes, %d shots", task_id, size, body.shots)
    return JSONResponse(
        status_code=202,
        content={"task_id": task_id, "status": TaskStatus.SUBMITTED.value},
        headers={"Location": f"/tasks/{task_id}"},
    )


@router.get(
    "/tasks/{task_id:path}",
    response_model=TaskPublic,
    response_model_exclude_none=True,
    summary="Get a task's state and outcome",
    responses={404: {"model": Message, "description": "No task has this id."}, **ERROR_RESPONSES},
)
def get_task(task_id: str, store: StoreDep) -> TaskPublic:
    """State, timestamps, and the counts (completed) or the error (failed).

    The `:path` converter lets ids with slashes reach this route, so every unknown id gets
    the same 404 body instead of the router's generic one.
    """
    task = store.get_task(task_id)
    if task is None:
        raise HTTPException(404, NOT_FOUND)
    return to_public(task)


@router.get(
    "/health",
    response_model=Health,
    summary="Is the API up and the database reachable?",
    responses={503: {"model": Message, "description": "The database cannot be reached."}},
)
def health(store: StoreDep, response: Response) -> Health:
    store.has_work()
    return Health(status="ok", database="ok")
