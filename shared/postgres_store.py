"""PostgreSQL backend, for many API servers and worker hosts sharing one queue.

Claims use `FOR UPDATE SKIP LOCKED`; an insert trigger NOTIFYs idle workers, which LISTEN
on a connection of their own (unless DATABASE_POLL_ONLY, for poolers that break LISTEN).
psycopg is imported only when this backend is selected.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from shared import postgres_sql as sql
from shared import rows
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
from shared.sqlite_sql import QUEUE_WAIT_BUCKETS, RUN_TIME_BUCKETS
from shared.store import Store

logger = logging.getLogger(__name__)

SCHEMA_VERSION = len(sql.MIGRATIONS)
POOL_TIMEOUT_SECONDS = 10.0


def _one(cursor: psycopg.Cursor[Any]) -> Any:
    """The single row of a query that always returns one."""
    row = cursor.fetchone()
    assert row is not None
    return row


class PostgresStore(Store):
    """A store on a PostgreSQL database, through a small connection pool per process."""

    def __init__(self, url: str, busy_timeout_ms: int = 5000, poll_only: bool = False, pool_size: int = 10) -> None:
        self.url = url
        self.busy_timeout_ms = busy_timeout_ms
        self.listens = not poll_only
        self._listener: psycopg.Connection[Any] | None = None
        # lock_timeout plays SQLite's busy timeout: past it the API answers 503, not a hang.
        self.pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, "row_factory": dict_row, "options": f"-c lock_timeout={busy_timeout_ms}"},
            timeout=POOL_TIMEOUT_SECONDS,
            open=False,
            name="qtq",
        )
        self._opened = False

    @contextlib.contextmanager
    def _connect(self, transaction: bool = False) -> Iterator[psycopg.Connection[Any]]:
        try:
            if not self._opened:
                self.pool.open(wait=False)
                self._opened = True
            with self.pool.connection() as conn:
                if transaction:
                    with conn.transaction():
                        yield conn
                else:
                    yield conn
        except (pg_errors.LockNotAvailable, pg_errors.QueryCanceled, pg_errors.DeadlockDetected) as error:
            raise StoreBusy(f"database is busy: {error}".strip()) from error
        except PoolTimeout as error:
            raise StoreUnavailable(f"no database connection within {POOL_TIMEOUT_SECONDS:g} s: {error}") from error
        except psycopg.OperationalError as error:
            raise StoreUnavailable(f"cannot use the database: {error}".strip()) from error
        except psycopg.Error as error:
            raise StoreError(str(error)) from error

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._opened:
            self.pool.close()
            self._opened = False

    def initialize(self) -> None:
        with self._connect(transaction=True) as conn:
            conn.execute(sql.SCHEMA_LOCK)
            conn.execute(sql.SCHEMA_VERSION_TABLE)
            version = _one(conn.execute(sql.SELECT_VERSION))["version"] or 0
            if version > SCHEMA_VERSION:
                raise StoreError(f"database has schema version {version}; this code knows up to {SCHEMA_VERSION}")
            for number, statements in enumerate(sql.MIGRATIONS[version:], start=version + 1):
                for statement in statements:
                    conn.execute(statement)
                conn.execute(sql.RECORD_VERSION, {"version": number})
            for metric, bounds in (("queue_wait", QUEUE_WAIT_BUCKETS), ("run_time", RUN_TIME_BUCKETS)):
                conn.execute(sql.SEED_BUCKETS, {"metric": metric, "bounds": list(map(float, bounds))})

    # --- the API's side -------------------------------------------------------------------

    def create_task(self, task_id: str, circuit: str, shots: int, seed: int | None, now: float) -> None:
        with self._connect() as conn:
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
        with self._connect(transaction=True) as conn:
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
            return bool(_one(conn.execute(sql.HAS_WORK))["found"])

    def finished_version(self) -> float:
        with self._connect() as conn:
            return float(_one(conn.execute(sql.FINISHED_VERSION))["version"])

    def finished_among(self, task_ids: list[str]) -> list[str]:
        with self._connect() as conn:
            return [row["id"] for row in conn.execute(sql.FINISHED_AMONG, {"ids": task_ids})]

    def wait_for_work(self, timeout: float) -> None:
        """Block until a NOTIFY says a task arrived, or timeout seconds pass."""
        if not self.listens:
            time.sleep(timeout)
            return
        try:
            if self._listener is None or self._listener.closed:
                self._listener = psycopg.connect(self.url, autocommit=True)
                self._listener.execute(f"LISTEN {sql.CHANNEL}")
            for _ in self._listener.notifies(timeout=timeout, stop_after=1):
                pass
        except psycopg.Error as error:
            logger.warning("LISTEN connection failed, polling instead until it is back: %s", error)
            if self._listener is not None:
                self._listener.close()
            self._listener = None
            time.sleep(min(timeout, 1.0))

    def recover_expired(self, now: float, max_attempts: int) -> list[tuple[str, TaskStatus, int]]:
        with self._connect(transaction=True) as conn:
            cancelled = conn.execute(sql.CANCEL_EXPIRED, {"now": now}).fetchall()
            failed = conn.execute(sql.FAIL_EXHAUSTED, {"now": now, "max_attempts": max_attempts}).fetchall()
            requeued = conn.execute(sql.REQUEUE_EXPIRED, {"now": now}).fetchall()
        return rows.recovered(cancelled, failed, requeued)

    def claim_next(self, worker_id: str, now: float, lease_seconds: float) -> Claim | None:
        with self._connect() as conn:
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
            plan = conn.execute(sql.EXPLAIN_CLAIM).fetchone()
        return json.dumps(plan)

    def debug_rows(self) -> list[dict[str, Any]]:
        with self._connect() as conn:
            return list(conn.execute(sql.DEBUG_ROWS).fetchall())
