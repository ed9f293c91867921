"""SQLite backend: the database file is both the task store and the queue."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from typing import Any

from shared.errors import StoreBusy, StoreError, StoreUnavailable
from shared.models import Claim, Task, TaskStatus
from shared.store import Store

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT    NOT NULL UNIQUE,
    status           TEXT    NOT NULL,
    circuit          TEXT    NOT NULL,
    shots            INTEGER NOT NULL,
    seed             INTEGER,
    created_at       REAL    NOT NULL,
    started_at       REAL,
    finished_at      REAL,
    result           TEXT,
    error            TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    worker_id        TEXT,
    lease_expires_at REAL
);
CREATE INDEX IF NOT EXISTS tasks_submitted_by_seq ON tasks (seq) WHERE status = 'submitted';
CREATE INDEX IF NOT EXISTS tasks_pending_by_lease ON tasks (lease_expires_at) WHERE status = 'pending';
"""

INSERT_TASK = """
INSERT INTO tasks (id, status, circuit, shots, seed, created_at)
VALUES (:id, 'submitted', :circuit, :shots, :seed, :now)
"""

SELECT_TASK = "SELECT * FROM tasks WHERE id = :id"

HAS_WORK = "SELECT EXISTS (SELECT 1 FROM tasks WHERE status = 'submitted')"

# A lease that expired means its worker died or hung: past the attempt limit the task fails,
# otherwise it goes back to the queue at its old place (seq is unchanged).
FAIL_EXHAUSTED = """
UPDATE tasks
SET status = 'failed', finished_at = :now, lease_expires_at = NULL,
    error = 'WorkerLost: the task was interrupted ' || attempts
            || ' times (its worker stopped renewing the lease); giving up after MAX_ATTEMPTS='
            || :max_attempts
WHERE status = 'pending' AND lease_expires_at < :now AND attempts >= :max_attempts
RETURNING id, attempts
"""

REQUEUE_EXPIRED = """
UPDATE tasks
SET status = 'submitted', worker_id = NULL, started_at = NULL, lease_expires_at = NULL
WHERE status = 'pending' AND lease_expires_at < :now
RETURNING id, attempts
"""

CLAIM_NEXT = """
UPDATE tasks
SET status = 'pending', attempts = attempts + 1, worker_id = :worker,
    started_at = :now, lease_expires_at = :expires
WHERE seq = (SELECT seq FROM tasks WHERE status = 'submitted' ORDER BY seq LIMIT 1)
RETURNING id, circuit, shots, seed, attempts, created_at
"""

# Every write by a worker names the attempt it holds: a worker whose lease was taken over
# matches no row and so cannot overwrite the new owner's state.
OWNED = "id = :id AND worker_id = :worker AND attempts = :attempt AND status = 'pending'"

RENEW_LEASE = f"UPDATE tasks SET lease_expires_at = :expires WHERE {OWNED}"

COMPLETE = f"""
UPDATE tasks
SET status = 'completed', result = :result, finished_at = :now, lease_expires_at = NULL
WHERE {OWNED}
"""

FAIL = f"""
UPDATE tasks
SET status = 'failed', error = :error, finished_at = :now, lease_expires_at = NULL
WHERE {OWNED}
"""

RELEASE = f"""
UPDATE tasks
SET status = 'submitted', attempts = attempts - 1, worker_id = NULL,
    started_at = NULL, lease_expires_at = NULL
WHERE {OWNED}
"""

DEBUG_ROWS = """
SELECT id, status, attempts, worker_id, started_at, finished_at, lease_expires_at
FROM tasks ORDER BY seq
"""


def _row_to_task(row: sqlite3.Row) -> Task:
    return Task(
        id=row["id"],
        status=TaskStatus(row["status"]),
        circuit=row["circuit"],
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
    )


class SqliteStore(Store):
    """A store on one SQLite file in WAL mode; a fresh connection per call, closed in `finally`."""

    def __init__(self, path: str, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = None
        try:
            # isolation_level=None: autocommit, so a lone INSERT is committed when execute returns,
            # and multi-statement work says BEGIN IMMEDIATE itself.
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None)
            conn.row_factory = sqlite3.Row
            # FULL: an acknowledged task survives power loss too, not only a killed process.
            conn.execute("PRAGMA synchronous = FULL")
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
        finally:
            if conn is not None:
                conn.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
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
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"database {self.path!r} has schema version {version}; "
                        f"this code knows up to {SCHEMA_VERSION}"
                    )
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def create_task(self, task_id: str, circuit: str, shots: int, seed: int | None, now: float) -> None:
        with self._connect() as conn:
            conn.execute(INSERT_TASK, {"id": task_id, "circuit": circuit, "shots": shots, "seed": seed, "now": now})

    def get_task(self, task_id: str) -> Task | None:
        with self._connect() as conn:
            row = conn.execute(SELECT_TASK, {"id": task_id}).fetchone()
        return _row_to_task(row) if row is not None else None

    def has_work(self) -> bool:
        with self._connect() as conn:
            return bool(conn.execute(HAS_WORK).fetchone()[0])

    def recover_expired(self, now: float, max_attempts: int) -> list[tuple[str, TaskStatus, int]]:
        with self._transaction() as conn:
            failed = conn.execute(FAIL_EXHAUSTED, {"now": now, "max_attempts": max_attempts}).fetchall()
            requeued = conn.execute(REQUEUE_EXPIRED, {"now": now}).fetchall()
        return [(r["id"], TaskStatus.FAILED, r["attempts"]) for r in failed] + [
            (r["id"], TaskStatus.SUBMITTED, r["attempts"]) for r in requeued
        ]

    def claim_next(self, worker_id: str, now: float, lease_seconds: float) -> Claim | None:
        with self._transaction() as conn:
            row = conn.execute(
                CLAIM_NEXT, {"worker": worker_id, "now": now, "expires": now + lease_seconds}
            ).fetchone()
        if row is None:
            return None
        return Claim(
            task_id=row["id"],
            circuit=row["circuit"],
            shots=row["shots"],
            seed=row["seed"],
            attempt=row["attempts"],
            created_at=row["created_at"],
        )

    def _owned_write(self, sql: str, claim: Claim, worker_id: str, **values: Any) -> bool:
        params = {"id": claim.task_id, "worker": worker_id, "attempt": claim.attempt, **values}
        with self._connect() as conn:
            return conn.execute(sql, params).rowcount == 1

    def renew_lease(self, claim: Claim, worker_id: str, expires_at: float) -> bool:
        return self._owned_write(RENEW_LEASE, claim, worker_id, expires=expires_at)

    def complete(self, claim: Claim, worker_id: str, result: dict[str, int], now: float) -> bool:
        return self._owned_write(COMPLETE, claim, worker_id, result=json.dumps(result), now=now)

    def fail(self, claim: Claim, worker_id: str, error: str, now: float) -> bool:
        return self._owned_write(FAIL, claim, worker_id, error=error, now=now)

    def release(self, claim: Claim, worker_id: str) -> bool:
        return self._owned_write(RELEASE, claim, worker_id)

    def debug_rows(self) -> list[dict[str, Any]]:
        with self._connect() as conn:
            return [dict(row) for row in conn.execute(DEBUG_ROWS)]
