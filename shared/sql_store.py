"""What both SQL backends share: every method that differs between them only in its SQL text.

Each backend supplies its statements (`sql`, a shared.queries.Queries subclass in its placeholder
style) and its connections (`_connect`, `_transaction`); rows are read by column name, which
sqlite3.Row and psycopg's dict rows both allow. Every statement runs with a parameter mapping,
an empty one when nothing is bound: psycopg turns `%%` back into `%` only then.
"""

from __future__ import annotations

import abc
import functools
import json
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any, ParamSpec, TypeVar

from shared import rows
from shared.errors import ConnectionLost, QuotaExceeded
from shared.models import (
    ApiKey,
    Batch,
    CancelOutcome,
    Claim,
    Finish,
    KeyLookup,
    LeaseStatus,
    NewTask,
    OwnerUsage,
    QueueStats,
    SubmitOutcome,
    Task,
    TaskStatus,
    TaskSummary,
    sweep_points,
)
from shared.queries import BATCH_INSERT_ROWS, Queries, insert_batch_tasks, tag_filter
from shared.store import DATABASE_CLOCK, NO_LIMIT, Store

logger = logging.getLogger(__name__)


def _circuit_bytes(task: NewTask) -> int:
    return len(task.circuit.encode("utf-8"))


def _columns(task: NewTask) -> dict[str, Any]:
    """A new task's own column values, by placeholder name, as both inserts bind them."""
    return {
        "circuit": task.circuit,
        "shots": task.shots,
        "seed": task.seed,
        "bytes": _circuit_bytes(task),
        "options": json.dumps(task.options) if task.options else None,
        "tags": json.dumps(task.tags) if task.tags else None,
    }


def _day(now: float) -> int:
    """The UTC day (days since the epoch) usage is counted under."""
    return int(now // 86400)


def _shots_run(claim: Claim) -> int:
    """Shots a completed task ran: its shots at each point of a sweep."""
    return claim.shots * sweep_points((claim.options or {}).get("parameters"))


class QueueFull(Exception):
    """Raised inside a submission's transaction (or savepoint) to roll it back."""


P = ParamSpec("P")
R = TypeVar("R")


def read_only(method: Callable[P, R]) -> Callable[P, R]:
    """A read is asked again, once, when its connection was cut under it: nothing was written, and
    the second try takes another connection (a write is never repeated blindly: it may have been
    committed)."""

    @functools.wraps(method)
    def read(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except ConnectionLost as error:
            logger.warning("%s, reading again on another connection", error)
            return method(*args, **kwargs)

    return read


class SqlStore(Store):
    sql: type[Queries]

    @abc.abstractmethod
    def _connect(self, durable: bool = False) -> AbstractContextManager[Any]:
        """A connection in autocommit mode; durable asks for a commit that survives power loss."""

    @abc.abstractmethod
    def _transaction(self, durable: bool = False) -> AbstractContextManager[Any]:
        """A connection inside a write transaction, committed when the block ends."""

    def _claim_context(self) -> AbstractContextManager[Any]:
        """Where CLAIM runs: a plain connection when the statement alone is atomic."""
        return self._connect()

    @read_only
    def finished_version(self) -> float:
        with self._connect() as conn:
            return float(conn.execute(self.sql.FINISHED_VERSION, {}).fetchone()["version"])

    # --- the API's side -------------------------------------------------------------------

    def create_task(
        self, task_id: str, task: NewTask, now: float, max_queued_bytes: int = NO_LIMIT, quota: int | None = None
    ) -> bool:
        def insert(conn: Any) -> bool:
            return self._insert_task(conn, task_id, task, now, max_queued_bytes)

        outcome, _ = self._submit(None, task_id, now, [task], quota, insert)
        return outcome is SubmitOutcome.CREATED

    def _insert_task(self, conn: Any, task_id: str, task: NewTask, now: float, max_queued_bytes: int) -> bool:
        """The task and its tags, inside the caller's transaction; False when the queue is full."""
        params = {"id": task_id, "now": now, "max_bytes": max_queued_bytes, "owner": task.owner, **_columns(task)}
        row = conn.execute(self.sql.INSERT_TASK, params).fetchone()
        if row is None:
            return False
        self._insert_tags(conn, [(row["seq"], task)])
        return True

    def _insert_tags(self, conn: Any, tasks: list[tuple[int, NewTask]]) -> None:
        """The task_tags rows of these (seq, task), inside the caller's transaction."""
        tags = [{"seq": seq, "key": k, "value": v} for seq, task in tasks for k, v in (task.tags or {}).items()]
        if tags:
            conn.cursor().executemany(self.sql.INSERT_TAG, tags)

    def create_task_once(
        self,
        key: str,
        request_hash: str,
        task_id: str,
        task: NewTask,
        now: float,
        max_queued_bytes: int,
        key_ttl_seconds: float,
        quota: int | None = None,
    ) -> tuple[SubmitOutcome, str]:
        return self._submit(
            (key, request_hash, key_ttl_seconds),
            task_id,
            now,
            [task],
            quota,
            lambda conn: self._insert_task(conn, task_id, task, now, max_queued_bytes),
        )

    def create_batch(
        self,
        batch_id: str,
        tasks: list[tuple[str, NewTask]],
        tags: dict[str, str] | None,
        now: float,
        max_queued_bytes: int = NO_LIMIT,
        idempotency: tuple[str, str, float] | None = None,
        quota: int | None = None,
    ) -> tuple[SubmitOutcome, str]:
        owner = tasks[0][1].owner if tasks else ""

        def insert(conn: Any) -> bool:
            size = sum(_circuit_bytes(task) for _, task in tasks)
            if int(conn.execute(self.sql.QUEUED_BYTES, {}).fetchone()["value"]) + size > max_queued_bytes:
                return False
            conn.execute(
                self.sql.INSERT_BATCH,
                {
                    "id": batch_id,
                    "now": now,
                    "total": len(tasks),
                    "tags": json.dumps(tags) if tags else None,
                    "owner": owner,
                },
            )
            first_turn = int(conn.execute(self.sql.FIRST_TURN, {"owner": owner}).fetchone()["turn"])
            for start in range(0, len(tasks), BATCH_INSERT_ROWS):
                self._insert_batch_tasks(conn, batch_id, owner, tasks, start, now, first_turn)
            return True

        return self._submit(idempotency, batch_id, now, [task for _, task in tasks], quota, insert)

    def _insert_batch_tasks(
        self,
        conn: Any,
        batch_id: str,
        owner: str,
        tasks: list[tuple[str, NewTask]],
        start: int,
        now: float,
        first_turn: int,
    ) -> None:
        """Up to BATCH_INSERT_ROWS of the batch's tasks from start, in one statement, and their tags;
        they take consecutive turns from first_turn."""
        chunk = tasks[start : start + BATCH_INSERT_ROWS]
        params: list[Any] = []
        for i, (task_id, task) in enumerate(chunk):
            columns = _columns(task)
            params += [
                task_id,
                columns["circuit"],
                columns["shots"],
                columns["seed"],
                now,
                columns["bytes"],
                columns["options"],
                columns["tags"],
                batch_id,
                start + i,
                owner,
                first_turn + start + i,
            ]
        found = conn.execute(insert_batch_tasks(self.sql, len(chunk)), params).fetchall()
        seq_of = {row["batch_index"]: row["seq"] for row in found}
        self._insert_tags(conn, [(seq_of[start + i], task) for i, (_, task) in enumerate(chunk)])

    def _submit(
        self,
        idempotency: tuple[str, str, float] | None,
        created_id: str,
        now: float,
        tasks: list[NewTask],
        quota: int | None,
        insert: Callable[[Any], bool],
    ) -> tuple[SubmitOutcome, str]:
        """Insert in one transaction, under an Idempotency-Key (key, request hash, TTL) when given:
        the key's first request is replayed or refused instead. Nothing is stored when the queue
        is full (all or nothing, the key included); QuotaExceeded when the owner's tasks submitted
        or pending would pass quota. The owner's usage counts the tasks in the same transaction."""
        owner = tasks[0].owner if tasks else ""

        def attempt(conn: Any) -> tuple[SubmitOutcome, str]:
            if idempotency is not None:
                key, request_hash, ttl = idempotency
                conn.execute(self.sql.EXPIRE_IDEMPOTENCY_KEY, {"key": key, "before": now - ttl})
                claimed = conn.execute(
                    self.sql.CLAIM_IDEMPOTENCY_KEY,
                    {"key": key, "request_hash": request_hash, "task_id": created_id, "now": now},
                ).fetchone()
                if claimed is None:
                    first = conn.execute(self.sql.SELECT_IDEMPOTENCY_KEY, {"key": key}).fetchone()
                    same = first["request_hash"] == request_hash
                    return (SubmitOutcome.REPLAYED if same else SubmitOutcome.CONFLICT), first["task_id"]
            if quota is not None:
                self._check_quota(conn, owner, len(tasks), quota)
            if not insert(conn):
                raise QueueFull  # rolls this submission back, its Idempotency-Key included
            conn.execute(
                self.sql.COUNT_SUBMITTED,
                {"owner": owner, "day": _day(now), "shard": self._usage_shard(), "n": len(tasks)},
            )
            return SubmitOutcome.CREATED, created_id

        try:
            outcome = self._submission(attempt)
        except QueueFull:
            return SubmitOutcome.QUEUE_FULL, ""
        if outcome[0] is SubmitOutcome.CREATED:
            self._task_created()
        return outcome

    def _submission(self, attempt: Callable[[Any], tuple[SubmitOutcome, str]]) -> tuple[SubmitOutcome, str]:
        """One submission's statements in a durable transaction; a backend may commit several
        submissions together (SQLite: shared.group_commit)."""
        with self._transaction(durable=True) as conn:
            return attempt(conn)

    def _check_quota(self, conn: Any, owner: str, adding: int, quota: int) -> None:
        """Raise QuotaExceeded (rolling the transaction back) when adding more tasks would pass quota."""
        conn.execute(self.sql.LOCK_OWNER, {"owner": owner})
        queued = int(conn.execute(self.sql.OWNER_QUEUED, {"owner": owner}).fetchone()["n"])
        if queued + adding > quota:
            raise QuotaExceeded(owner, queued, adding, quota)

    def _usage_shard(self) -> int:
        """Which of an owner's usage rows for the day this write adds to (a backend may spread them)."""
        return 0

    @read_only
    def get_batch(self, batch_id: str) -> Batch | None:
        with self._connect() as conn:
            row = conn.execute(self.sql.SELECT_BATCH, {"id": batch_id}).fetchone()
            if row is None:
                return None
            states = conn.execute(self.sql.BATCH_STATES, {"id": batch_id}).fetchall()
        counts = {TaskStatus(r["status"]): int(r["n"]) for r in states}
        batch = Batch(
            id=row["id"],
            created_at=row["created_at"],
            total=row["total"],
            states=counts,
            tags=json.loads(row["tags"]) if row["tags"] is not None else None,
            owner=row["owner"],
        )
        if batch.done:
            last = [r["finished_at"] for r in states if r["finished_at"] is not None]
            batch = replace(batch, finished_at=max(last) if last else batch.created_at)
        return batch

    @read_only
    def batch_tasks(self, batch_id: str, after_index: int, limit: int) -> tuple[list[Task], int | None]:
        params = {"id": batch_id, "after": after_index, "limit": limit + 1}
        with self._connect() as conn:
            found = conn.execute(self.sql.BATCH_TASKS, params).fetchall()
        tasks = [rows.to_task(r) for r in found[:limit]]
        return tasks, (found[limit - 1]["batch_index"] if len(found) > limit else None)

    def cancel_batch(self, batch_id: str, now: float) -> None:
        with self._transaction(durable=True) as conn:
            conn.execute(self.sql.CANCEL_BATCH_SUBMITTED, {"id": batch_id, "now": now})
            conn.execute(self.sql.REQUEST_BATCH_CANCEL, {"id": batch_id})
            self._finishing(conn)
        self._tasks_finished()

    def prune_idempotency_keys(self, before: float) -> int:
        with self._connect() as conn:
            return conn.execute(self.sql.PRUNE_IDEMPOTENCY_KEYS, {"before": before}).rowcount

    def _task_created(self) -> None:
        """After a submission commits: a backend wakes idle workers its own way (NOTIFY needs nothing)."""

    def _finishing(self, conn: Any) -> None:
        """Inside a transaction that may make tasks final: a backend whose finished_bell rings with
        the commit (PostgreSQL's NOTIFY) rings it here."""

    def _tasks_finished(self) -> None:
        """After a commit that may have made tasks final: a backend whose finished_bell rings
        apart from the database (SQLite's socket) rings it here."""

    @read_only
    def queued_bytes(self) -> int:
        with self._connect() as conn:
            return int(conn.execute(self.sql.QUEUED_BYTES, {}).fetchone()["value"])

    @read_only
    def get_task(self, task_id: str) -> Task | None:
        with self._connect() as conn:
            row = conn.execute(self.sql.SELECT_TASK, {"id": task_id}).fetchone()
        return rows.to_task(row) if row is not None else None

    @read_only
    def get_circuit(self, task_id: str) -> tuple[str, str | None, str] | None:
        with self._connect() as conn:
            row = conn.execute(self.sql.SELECT_CIRCUIT, {"id": task_id}).fetchone()
        return (row["circuit"], row["diagram"], row["owner"]) if row is not None else None

    @read_only
    def list_tasks(
        self,
        status: TaskStatus | None,
        before_seq: int | None,
        limit: int,
        tags: list[tuple[str, str]] | None = None,
        batch_id: str | None = None,
        owner: str | None = None,
    ) -> tuple[list[TaskSummary], int | None]:
        params: dict[str, Any] = {"before": before_seq or 2**63 - 1, "limit": limit + 1}
        filters = []
        if owner is not None:
            filters.append(self.sql.OWNER_FILTER)
            params["owner"] = owner
        if batch_id is not None:
            filters.append(self.sql.BATCH_FILTER)
            params["batch_id"] = batch_id
        if status is not None:
            filters.append(self.sql.STATUS_FILTER)
            params["status"] = status.value
        for n, (key, value) in enumerate(tags or []):
            filters.append(tag_filter(self.sql, n))
            params[f"tag_key_{n}"], params[f"tag_value_{n}"] = key, value
        query = self.sql.LIST_TASKS.replace("{filters}", " ".join(filters))
        with self._connect() as conn:
            found = conn.execute(query, params).fetchall()
        items = [rows.to_summary(r) for r in found[:limit]]
        return items, (items[-1].seq if len(found) > limit else None)

    def cancel(self, task_id: str, now: float) -> CancelOutcome | None:
        with self._transaction(durable=True) as conn:
            if not conn.execute(self.sql.CANCEL_SUBMITTED, {"id": task_id, "now": now}).fetchone():
                if conn.execute(self.sql.REQUEST_CANCEL, {"id": task_id}).fetchone():
                    return CancelOutcome(TaskStatus.PENDING, changed=True)
                row = conn.execute(self.sql.SELECT_STATUS, {"id": task_id}).fetchone()
                return CancelOutcome(TaskStatus(row["status"]), changed=False) if row is not None else None
            self._finishing(conn)
        self._tasks_finished()
        return CancelOutcome(TaskStatus.CANCELLED, changed=True)

    @read_only
    def stats(self, live_within: float, now: float | None = DATABASE_CLOCK) -> QueueStats:
        with self._connect() as conn:
            return rows.queue_stats(
                counts=conn.execute(self.sql.TASK_COUNTS, {}).fetchall(),
                counters=conn.execute(self.sql.COUNTERS, {}).fetchall(),
                buckets=conn.execute(self.sql.HISTOGRAMS, {}).fetchall(),
                workers=conn.execute(self.sql.LIVE_WORKERS, {"within": live_within, "now": now}).fetchall(),
            )

    # --- API keys and usage ----------------------------------------------------------------

    def create_key(self, key: ApiKey, token_hash: str) -> bool:
        params = {
            "id": key.id,
            "name": key.name,
            "token_hash": token_hash,
            "admin": key.admin,
            "max_queued": key.max_queued,
            "now": key.created_at,
        }
        with self._connect(durable=True) as conn:
            return conn.execute(self.sql.INSERT_KEY, params).fetchone() is not None

    @read_only
    def list_keys(self) -> list[ApiKey]:
        with self._connect() as conn:
            return [rows.to_key(row) for row in conn.execute(self.sql.LIST_KEYS, {}).fetchall()]

    def revoke_key(self, name: str, now: float) -> bool:
        with self._connect(durable=True) as conn:
            return conn.execute(self.sql.REVOKE_KEY, {"name": name, "now": now}).fetchone() is not None

    @read_only
    def find_key(self, token_hash: str) -> KeyLookup:
        with self._connect() as conn:
            row = conn.execute(self.sql.FIND_KEY, {"token_hash": token_hash}).fetchone()
        return KeyLookup(keys_exist=int(row["keys"]) > 0, key=rows.to_key(row) if row["id"] is not None else None)

    def touch_key(self, key_id: str, now: float, stale_after: float) -> None:
        with self._connect() as conn:
            conn.execute(self.sql.TOUCH_KEY, {"id": key_id, "now": now, "stale": now - stale_after})

    @read_only
    def usage(self, owner: str | None, now: float) -> list[OwnerUsage]:
        params: dict[str, Any] = {"today": _day(now)}
        query = self.sql.USAGE.replace("{owner_filter}", self.sql.OWNER_USAGE_FILTER if owner is not None else "")
        if owner is not None:
            params["owner"] = owner
        with self._connect() as conn:
            return [rows.to_usage(row) for row in conn.execute(query, params).fetchall()]

    # --- the worker's side ----------------------------------------------------------------

    def recover_expired(self, now: float | None, max_attempts: int) -> list[tuple[str, TaskStatus, int]]:
        with self._transaction() as conn:
            cancelled = conn.execute(self.sql.CANCEL_EXPIRED, {"now": now}).fetchall()
            failed = conn.execute(self.sql.FAIL_EXHAUSTED, {"now": now, "max_attempts": max_attempts}).fetchall()
            requeued = conn.execute(self.sql.REQUEUE_EXPIRED, {"now": now}).fetchall()
            if cancelled or failed:
                self._finishing(conn)
        if cancelled or failed:
            self._tasks_finished()
        return rows.recovered(cancelled, failed, requeued)

    @read_only
    def queue_depth(self) -> int:
        with self._connect() as conn:
            return int(conn.execute(self.sql.QUEUE_DEPTH, {}).fetchone()["n"])

    @read_only
    def live_worker_count(self, within: float, host: str, now: float | None = DATABASE_CLOCK) -> tuple[int, int]:
        with self._connect() as conn:
            row = conn.execute(self.sql.LIVE_WORKER_COUNT, {"within": within, "host": host, "now": now}).fetchone()
        return int(row["n"]), int(row["here"])

    def claim(self, worker_id: str, now: float | None, lease_seconds: float, limit: int) -> list[Claim]:
        params = {"worker": worker_id, "now": now, "lease_seconds": lease_seconds, "limit": limit}
        with self._claim_context() as conn:
            found = conn.execute(self.sql.CLAIM, params).fetchall()
        return [rows.to_claim(row) for row in sorted(found, key=lambda row: (row["turn"], row["seq"]))]

    def renew_leases(
        self, claims: list[Claim], worker_id: str, lease_seconds: float, now: float | None = DATABASE_CLOCK
    ) -> list[LeaseStatus]:
        statuses = []
        with self._transaction() as conn:
            for claim in claims:
                params = {
                    "id": claim.task_id,
                    "worker": worker_id,
                    "attempt": claim.attempt,
                    "lease_seconds": lease_seconds,
                    "now": now,
                }
                row = conn.execute(self.sql.RENEW_LEASE, params).fetchone()
                if row is None:
                    statuses.append(LeaseStatus.LOST)
                else:
                    statuses.append(LeaseStatus.CANCEL_REQUESTED if row["cancel_requested"] else LeaseStatus.HELD)
        return statuses

    def finish(self, worker_id: str, finishes: list[Finish]) -> list[bool]:
        written = []
        used: dict[tuple[str, int], tuple[int, float]] = {}  # (owner, day): (shots, simulation seconds)
        with self._transaction() as conn:
            for finish in finishes:
                query, values = self._finish_statement(finish)
                params = {"id": finish.claim.task_id, "worker": worker_id, "attempt": finish.claim.attempt, **values}
                written.append(conn.execute(query, params).rowcount == 1)
                if written[-1] and finish.status in (TaskStatus.COMPLETED, TaskStatus.FAILED):
                    shots, seconds = used.get((finish.claim.owner, _day(finish.now)), (0, 0.0))
                    ran = _shots_run(finish.claim) if finish.status is TaskStatus.COMPLETED else 0
                    used[(finish.claim.owner, _day(finish.now))] = (
                        shots + ran,
                        seconds + (finish.details.duration_ms or 0.0) / 1000,
                    )
            for (owner, day), (shots, seconds) in used.items():
                conn.execute(
                    self.sql.COUNT_RUN,
                    {"owner": owner, "day": day, "shard": self._usage_shard(), "shots": shots, "seconds": seconds},
                )
            final = any(ok and f.status is not TaskStatus.SUBMITTED for f, ok in zip(finishes, written, strict=True))
            if final:
                self._finishing(conn)
        if final:
            self._tasks_finished()
        return written

    def release_claims(self, worker_id: str) -> list[str]:
        with self._connect() as conn:
            return [row["id"] for row in conn.execute(self.sql.RELEASE_ALL, {"worker": worker_id}).fetchall()]

    def _finish_statement(self, finish: Finish) -> tuple[str, dict[str, Any]]:
        """The owned write that leaves the task in finish.status, and what it binds."""
        if finish.status is TaskStatus.SUBMITTED:
            return self.sql.RELEASE, {}
        if finish.status is TaskStatus.CANCELLED:
            return self.sql.MARK_CANCELLED, {"now": finish.now}
        started = {"now": finish.now, "started": finish.started_at, **finish.details.__dict__}
        if finish.status is TaskStatus.FAILED:
            return self.sql.FAIL, {"error": finish.error, **started}
        result = json.dumps(finish.result) if finish.result is not None else None
        output = json.dumps(finish.output) if finish.output else None
        return self.sql.COMPLETE, {"result": result, "output": output, **started}

    def beat_worker(
        self, worker_id: str, host: str, pid: int, task_id: str | None, now: float | None = DATABASE_CLOCK
    ) -> None:
        with self._connect() as conn:
            conn.execute(
                self.sql.BEAT_WORKER, {"id": worker_id, "host": host, "pid": pid, "now": now, "task_id": task_id}
            )

    def remove_worker(self, worker_id: str) -> None:
        with self._connect() as conn:
            conn.execute(self.sql.REMOVE_WORKER, {"id": worker_id})

    def forget_workers(self, silent_for: float, now: float | None = DATABASE_CLOCK) -> None:
        with self._connect() as conn:
            conn.execute(self.sql.FORGET_DEAD_WORKERS, {"silent_for": silent_for, "now": now})

    def prune_finished(self, before: float, limit: int) -> int:
        with self._connect() as conn:
            return conn.execute(self.sql.PRUNE_FINISHED, {"before": before, "limit": limit}).rowcount
