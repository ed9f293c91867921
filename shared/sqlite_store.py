"""SQLite backend: the database file is both the task store and the queue."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

from shared import rows
from shared import sqlite_sql as sql
from shared.errors import StoreBusy, StoreError, StoreUnavailable
from shared.models import (
    CancelOutcome,
    Claim,
    LeaseStatus,
    QueueStats,
    RunDetails,
    Task,
    TaskStatus,
    TaskSummary,
    WorkerInfo,
)
from shared.store import Store

SCHEMA_VERSION = len(sql.MIGRATIONS)


class SqliteStore(Store):
    """A store on one SQLite file in WAL mode.

    Each thread keeps one connection (opening one and parsing the schema costs more than most
    statements here); close() closes them all, and the API and the worker call it in `finally`
    when they stop. A connection whose file was replaced (another inode at the path) is
    reopened, so a database that disappears is noticed at once.
    """

    def __init__(self, path: str, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        inode = os.stat(self.path).st_ino if os.path.exists(self.path) else None
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "inode", None) != inode:
            self._discard(conn)
            conn = None
        if conn is None:
            # isolation_level=None: autocommit, so a lone statement is committed when execute
            # returns, and multi-statement work says BEGIN IMMEDIATE itself. Only this thread uses
            # it; check_same_thread=False lets close() end it from another.
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            with self._lock:
                self._connections.append(conn)
            self._local.conn = conn
            self._local.inode = os.stat(self.path).st_ino
        return conn

    def _discard(self, conn: sqlite3.Connection) -> None:
        self._local.conn = None
        with self._lock:
            if conn in self._connections:
                self._connections.remove(conn)
        conn.close()

    @contextlib.contextmanager
    def _connect(self, durable: bool = False) -> Iterator[sqlite3.Connection]:
        try:
            conn = self._connection()
            # In WAL mode every commit survives a killed process. FULL also syncs it to disk before
            # returning, so an acknowledged submission survives power loss too; the worker's own
            # bookkeeping skips that fsync: were a claim or a result lost with the power, the
            # lease would expire and the task run again.
            conn.execute("PRAGMA synchronous = FULL" if durable else "PRAGMA synchronous = NORMAL")
            yield conn
        except sqlite3.OperationalError as error:
            text = str(error)
            if "locked" in text or "busy" in text:
                raise StoreBusy(f"database is busy: {text}") from error
            if "unable to open" in text or "readonly" in text or "disk I/O" in text:
                raise StoreUnavailable(f"cannot use database {self.path!r}: {text}") from error
            raise StoreError(text) from error
        except sqlite3.DatabaseError as error:
            raise StoreUnavailable(f"cannot use database {self.path!r}: {error}") from error
        except OSError as error:
            raise StoreUnavailable(f"cannot use database {self.path!r}: {error.strerror}") from error

    @contextlib.contextmanager
    def _transaction(self, durable: bool = False) -> Iterator[sqlite3.Connection]:
        with self._connect(durable) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def initialize(self) -> None:
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode = WAL")
        with self._transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"database {self.path!r} has schema version {version}; this code knows up to {SCHEMA_VERSION}"
                )
            for statements in sql.MIGRATIONS[version:]:
                for statement in statements:
                    conn.execute(statement)
            for metric, bounds in (("queue_wait", sql.QUEUE_WAIT_BUCKETS), ("run_time", sql.RUN_TIME_BUCKETS)):
                conn.executemany(sql.SEED_BUCKETS, [(metric, le) for le in bounds])
                conn.execute(sql.SEED_INF_BUCKET, (metric, metric))
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # --- the API's side -------------------------------------------------------------------

    def create_task(self, task_id: str, circuit: str, shots: int, seed: int | None, now: float) -> None:
        with self._connect(durable=True) as conn:
            conn.execute(sql.INSERT_TASK, {"id": task_id, "circuit": circuit, "shots": shots, "seed": seed, "now": now})

    def get_task(self, task_id: str) -> Task | None:
        with self._connect() as conn:
            row = conn.execute(sql.SELECT_TASK, {"id": task_id}).fetchone()
        return rows.to_task(row) if row is not None else None

    def get_circuit(self, task_id: str) -> tuple[str, str | None] | None:
        with self._connect() as conn:
            row = conn.execute(sql.SELECT_CIRCUIT, {"id": task_id}).fetchone()
        return (row["circuit"], row["diagram"]) if row is not None else None

    def list_tasks(
        self, status: TaskStatus | None, before_seq: int | None, limit: int
    ) -> tuple[list[TaskSummary], int | None]:
        params: dict[str, Any] = {"before": before_seq or 2**63 - 1, "limit": limit + 1}
        query = sql.LIST_TASKS
        if status is not None:
            query, params["status"] = sql.LIST_TASKS_BY_STATUS, status.value
        with self._connect() as conn:
            found = conn.execute(query, params).fetchall()
        items = [rows.to_summary(r) for r in found[:limit]]
        return items, (items[-1].seq if len(found) > limit else None)

    def cancel(self, task_id: str, now: float) -> CancelOutcome | None:
        with self._transaction(durable=True) as conn:
            if conn.execute(sql.CANCEL_SUBMITTED, {"id": task_id, "now": now}).fetchone():
                return CancelOutcome(TaskStatus.CANCELLED, changed=True)
            if conn.execute(sql.REQUEST_CANCEL, {"id": task_id}).fetchone():
                return CancelOutcome(TaskStatus.PENDING, changed=True)
            row = conn.execute(sql.SELECT_STATUS, {"id": task_id}).fetchone()
        return CancelOutcome(TaskStatus(row["status"]), changed=False) if row is not None else None

    def stats(self, now: float, live_after: float) -> QueueStats:
        with self._connect() as conn:
            return rows.queue_stats(
                counts=conn.execute(sql.TASK_COUNTS).fetchall(),
                counters=conn.execute(sql.COUNTERS).fetchall(),
                buckets=conn.execute(sql.HISTOGRAMS).fetchall(),
                workers=conn.execute(sql.LIVE_WORKERS, {"since": live_after}).fetchall(),
            )

    # --- the worker's side ----------------------------------------------------------------

    def has_work(self) -> bool:
        with self._connect() as conn:
            return bool(conn.execute(sql.HAS_WORK).fetchone()[0])

    def finished_version(self) -> float:
        with self._connect() as conn:
            return float(conn.execute(sql.FINISHED_VERSION).fetchone()[0])

    def finished_among(self, task_ids: list[str]) -> list[str]:
        found: list[str] = []
        with self._connect() as conn:
            for start in range(0, len(task_ids), 500):
                chunk = task_ids[start : start + 500]
                query = sql.FINISHED_AMONG.format(marks=",".join("?" * len(chunk)))
                found += [row["id"] for row in conn.execute(query, chunk)]
        return found

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()

    def recover_expired(self, now: float, max_attempts: int) -> list[tuple[str, TaskStatus, int]]:
        with self._transaction() as conn:
            cancelled = conn.execute(sql.CANCEL_EXPIRED, {"now": now}).fetchall()
            failed = conn.execute(sql.FAIL_EXHAUSTED, {"now": now, "max_attempts": max_attempts}).fetchall()
            requeued = conn.execute(sql.REQUEUE_EXPIRED, {"now": now}).fetchall()
        return rows.recovered(cancelled, failed, requeued)

    def claim_next(self, worker_id: str, now: float, lease_seconds: float) -> Claim | None:
        with self._transaction() as conn:
            row = conn.execute(
                sql.CLAIM_NEXT, {"worker": worker_id, "now": now, "expires": now + lease_seconds}
            ).fetchone()
        return rows.to_claim(row) if row is not None else None

    def _owned_write(self, query: str, claim: Claim, worker_id: str, **values: Any) -> bool:
        params = {"id": claim.task_id, "worker": worker_id, "attempt": claim.attempt, **values}
        with self._connect() as conn:
            return conn.execute(query, params).rowcount == 1

    def renew_lease(self, claim: Claim, worker_id: str, expires_at: float) -> LeaseStatus:
        params = {"id": claim.task_id, "worker": worker_id, "attempt": claim.attempt, "expires": expires_at}
        with self._connect() as conn:
            row = conn.execute(sql.RENEW_LEASE, params).fetchone()
        if row is None:
            return LeaseStatus.LOST
        return LeaseStatus.CANCEL_REQUESTED if row["cancel_requested"] else LeaseStatus.HELD

    def complete(self, claim: Claim, worker_id: str, result: dict[str, int], now: float, details: RunDetails) -> bool:
        return self._owned_write(sql.COMPLETE, claim, worker_id, result=json.dumps(result), now=now, **details.__dict__)

    def fail(self, claim: Claim, worker_id: str, error: str, now: float, details: RunDetails) -> bool:
        return self._owned_write(sql.FAIL, claim, worker_id, error=error, now=now, **details.__dict__)

    def mark_cancelled(self, claim: Claim, worker_id: str, now: float) -> bool:
        return self._owned_write(sql.MARK_CANCELLED, claim, worker_id, now=now)

    def release(self, claim: Claim, worker_id: str) -> bool:
        return self._owned_write(sql.RELEASE, claim, worker_id)

    def beat_worker(self, worker: WorkerInfo) -> None:
        with self._connect() as conn:
            conn.execute(
                sql.BEAT_WORKER,
                {
                    "id": worker.id,
                    "host": worker.host,
                    "pid": worker.pid,
                    "now": worker.last_heartbeat,
                    "task_id": worker.task_id,
                },
            )

    def remove_worker(self, worker_id: str) -> None:
        with self._connect() as conn:
            conn.execute(sql.REMOVE_WORKER, {"id": worker_id})

    def forget_workers(self, silent_since: float) -> None:
        with self._connect() as conn:
            conn.execute(sql.FORGET_DEAD_WORKERS, {"before": silent_since})

    def prune_finished(self, before: float, limit: int) -> int:
        with self._connect() as conn:
            return conn.execute(sql.PRUNE_FINISHED, {"before": before, "limit": limit}).rowcount

    def explain_claim(self) -> str:
        with self._connect() as conn:
            return "\n".join(row["detail"] for row in conn.execute(sql.EXPLAIN_CLAIM))

    def debug_rows(self) -> list[dict[str, Any]]:
        with self._connect() as conn:
            return [dict(row) for row in conn.execute(sql.DEBUG_ROWS)]
