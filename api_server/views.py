"""How records become JSON: timestamps, the public task view, list items and page cursors.

Used by the routes and by monitoring alike; no HTTP and no SQL here.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from api_server.schemas import TaskListItem
from shared.models import Batch, Task, TaskStatus, TaskSummary


def timestamp(value: float) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)


def optional_timestamp(value: float | None) -> datetime | None:
    return timestamp(value) if value is not None else None


def rfc3339(value: float) -> str:
    """UTC, microseconds, `Z`: the form pydantic gives a UTC datetime, without building one."""
    return datetime.fromtimestamp(value, tz=UTC).isoformat().replace("+00:00", "Z")


def public_view(task: Task, show_owner: bool = False) -> dict[str, Any]:
    """The JSON body of GET /tasks/{task_id} (schema: TaskPublic), with no null fields; the
    owner's key name only for an admin.

    Built as a plain dict: the task view is the hottest read of the API, and a pydantic model
    built and dumped per request costs more than the database read behind it.
    """
    view: dict[str, Any] = {
        "task_id": task.id,
        "status": task.status.value,
        "shots": task.shots,
        "seed": task.seed,
        "attempts": task.attempts or None,
        "created_at": rfc3339(task.created_at),
        "started_at": rfc3339(task.started_at) if task.started_at is not None else None,
        "finished_at": rfc3339(task.finished_at) if task.finished_at is not None else None,
        "result": task.result,
        "error": task.error,
        "num_qubits": task.num_qubits,
        "depth": task.depth,
        "duration_ms": _ms(task.duration_ms),
        "parse_ms": _ms(task.parse_ms),
        "transpile_ms": _ms(task.transpile_ms),
        "cancel_requested": True if task.cancel_requested and task.status is TaskStatus.PENDING else None,
        "tags": task.tags,
        "batch_id": task.batch_id,
        "owner": task.owner if show_owner and task.owner else None,
    }
    if task.options:
        view.update(_options_view(task.options, task.output or {}))
    if task.output:
        view.update(task.output)
    return {key: value for key, value in view.items() if value is not None}


def _options_view(options: dict[str, Any], output: dict[str, Any]) -> dict[str, Any]:
    """The options echoed as submitted; `memory: true` until a task's outcomes replace it (a
    sweep's stay in its points)."""
    echo = {key: options.get(key) for key in ("parameters", "observables", "method", "noise")}
    if options.get("memory"):
        echo["memory"] = True
    return echo


def _ms(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


def batch_view(batch: Batch, show_owner: bool = False) -> dict[str, Any]:
    """The JSON body of GET /batches/{batch_id} (schema: BatchPublic), with no null fields."""
    view: dict[str, Any] = {
        "batch_id": batch.id,
        "created_at": rfc3339(batch.created_at),
        "tags": batch.tags,
        "total": batch.total,
        "states": {state.value: n for state, n in sorted(batch.states.items())},
        "done": batch.done,
        "finished_at": rfc3339(batch.finished_at) if batch.finished_at is not None else None,
        "owner": batch.owner if show_owner and batch.owner else None,
    }
    return {key: value for key, value in view.items() if value is not None}


def list_item(task: TaskSummary, show_owner: bool = False) -> TaskListItem:
    return TaskListItem(
        task_id=task.id,
        status=task.status,
        shots=task.shots,
        created_at=timestamp(task.created_at),
        started_at=optional_timestamp(task.started_at),
        finished_at=optional_timestamp(task.finished_at),
        num_qubits=task.num_qubits,
        tags=task.tags,
        batch_id=task.batch_id,
        owner=task.owner if show_owner and task.owner else None,
    )


# What encode_cursor writes: 8 bytes, base64url without padding.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{11}$"


def encode_cursor(seq: int) -> str:
    """The position after which the next page starts: 8 bytes, base64url. Clients treat it as opaque."""
    return base64.urlsafe_b64encode(seq.to_bytes(8, "big")).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    # CURSOR_PATTERN has already checked the shape; any such string is a valid position.
    return int.from_bytes(base64.urlsafe_b64decode(cursor + "="), "big") & (2**63 - 1)
