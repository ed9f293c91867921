"""Turn database rows (any mapping of column name to value) into records; shared by both backends."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from shared.models import (
    ApiKey,
    Claim,
    Histogram,
    OwnerUsage,
    QueueStats,
    Task,
    TaskStatus,
    TaskSummary,
    Usage,
    WorkerInfo,
)


def to_task(row: Mapping[str, Any]) -> Task:
    return Task(
        id=row["id"],
        status=TaskStatus(row["status"]),
        shots=row["shots"],
        seed=row["seed"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        result=json.loads(row["result"]) if row["result"] is not None else None,
        error=row["error"],
        attempts=row["attempts"],
        worker_id=row["worker_id"],
        lease_expires_at=row["lease_expires_at"],
        num_qubits=row["num_qubits"],
        depth=row["depth"],
        duration_ms=row["duration_ms"],
        parse_ms=row["parse_ms"],
        transpile_ms=row["transpile_ms"],
        cancel_requested=bool(row["cancel_requested"]),
        options=json.loads(row["options"]) if row["options"] is not None else None,
        output=json.loads(row["output"]) if row["output"] is not None else None,
        tags=json.loads(row["tags"]) if row["tags"] is not None else None,
        batch_id=row["batch_id"],
        owner=row["owner"],
    )


def to_summary(row: Mapping[str, Any]) -> TaskSummary:
    return TaskSummary(
        id=row["id"],
        status=TaskStatus(row["status"]),
        shots=row["shots"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        num_qubits=row["num_qubits"],
        seq=row["seq"],
        tags=json.loads(row["tags"]) if row["tags"] is not None else None,
        batch_id=row["batch_id"],
        owner=row["owner"],
    )


def to_claim(row: Mapping[str, Any]) -> Claim:
    return Claim(
        task_id=row["id"],
        circuit=row["circuit"],
        shots=row["shots"],
        seed=row["seed"],
        attempt=row["attempts"],
        created_at=row["created_at"],
        options=json.loads(row["options"]) if row["options"] is not None else None,
        owner=row["owner"],
    )


def to_key(row: Mapping[str, Any]) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        admin=bool(row["admin"]),
        max_queued=row["max_queued"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


def to_usage(row: Mapping[str, Any]) -> OwnerUsage:
    def usage(when: str) -> Usage:
        return Usage(int(row[f"{when}_submitted"]), int(row[f"{when}_shots"]), float(row[f"{when}_seconds"]))

    return OwnerUsage(row["owner"], today=usage("today"), total=usage("total"))


def recovered(
    cancelled: Iterable[Mapping[str, Any]], failed: Iterable[Mapping[str, Any]], requeued: Iterable[Mapping[str, Any]]
) -> list[tuple[str, TaskStatus, int]]:
    """(id, new state, attempts) for each task a lease sweep settled."""
    return [
        (row["id"], state, row["attempts"])
        for state, found in (
            (TaskStatus.CANCELLED, cancelled),
            (TaskStatus.FAILED, failed),
            (TaskStatus.SUBMITTED, requeued),
        )
        for row in found
    ]


def queue_stats(
    counts: Iterable[Mapping[str, Any]],
    counters: Iterable[Mapping[str, Any]],
    buckets: Iterable[Mapping[str, Any]],
    workers: Iterable[Mapping[str, Any]],
) -> QueueStats:
    """Assemble /health's and /metrics' numbers from (status, n), (name, value), (metric, le, count) rows.

    Bucket rows come ordered by metric and bound, the +Inf bucket (le NULL) last.
    """
    by_state = {TaskStatus(r["status"]): int(r["n"]) for r in counts}
    values = {r["name"]: float(r["value"]) for r in counters}
    points: dict[str, list[tuple[float, int]]] = {"queue_wait": [], "run_time": []}
    for r in buckets:
        points.setdefault(r["metric"], []).append((math.inf if r["le"] is None else float(r["le"]), int(r["count"])))

    def histogram(metric: str) -> Histogram:
        found = points[metric]
        return Histogram(found, values.get(f"{metric}_sum", 0.0), found[-1][1] if found else 0)

    return QueueStats(
        counts={s: by_state.get(s, 0) for s in TaskStatus},
        submitted_total=int(values.get("submitted_total", 0)),
        finished_total={
            s: int(values.get(f"finished_{s.value}", 0))
            for s in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)
        },
        queue_wait=histogram("queue_wait"),
        run_time=histogram("run_time"),
        workers=[WorkerInfo(**dict(r)) for r in workers],
    )
