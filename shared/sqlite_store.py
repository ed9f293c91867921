"""SQLite backend: the database file is both the task store and the queue."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator

from shared import sqlite_sql
from shared.errors import StoreBusy, StoreError, StoreUnavailable
from shared.metrics_buckets import BUCKETS_BY_METRIC
from shared.sql_store import SqlStore
from shared.wakeup import WakeSocket, wake_all

SCHEMA_VERSION = len(sqlite_sql.MIGRATIONS)


class SqliteStore(SqlStore):
    """A store on one SQLite file in WAL mode.

    Each thread keeps one connection (opening one and parsing the schema costs more than most
    statements here); close() closes them all, and the API and the worker call it in `finally`
    when they stop. A connection whose file was replaced (another inode at the path) is
    reopened, so a database that disappears is noticed at once.
    """

    sql = sqlite_sql.SqliteQueries

    def __init__(self, path: str, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._doorbell: WakeSocket | None = None
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        try:
            inode: int | None = os.stat(self.path).st_ino
        except FileNotFoundError:
            inode = None
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
            conn.create_function(sqlite_sql.CLOCK_FUNCTION, 0, time.time)
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

    def _claim_context(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        # BEGIN IMMEDIATE takes the write lock before the claim's subquery reads, so two workers
        # can never pick the same row.
        return self._transaction()

    def initialize(self) -> None:
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode = WAL")
        with self._transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"database {self.path!r} has schema version {version}; this code knows up to {SCHEMA_VERSION}"
                )
            for statements in sqlite_sql.MIGRATIONS[version:]:
                for statement in statements:
                    conn.execute(statement)
            for metric, bounds in BUCKETS_BY_METRIC.items():
                conn.executemany(sqlite_sql.SEED_BUCKETS, [(metric, le) for le in bounds])
                conn.execute(sqlite_sql.SEED_INF_BUCKET, (metric, metric))
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def finished_among(self, task_ids: list[str]) -> list[str]:
        found: list[str] = []
        with self._connect() as conn:
            for start in range(0, len(task_ids), 500):
                chunk = task_ids[start : start + 500]
                query = sqlite_sql.FINISHED_AMONG.format(marks=",".join("?" * len(chunk)))
                found += [row["id"] for row in conn.execute(query, chunk)]
        return found

    def _task_created(self) -> None:
        wake_all(self.path)

    def listen(self) -> None:
        # Idle workers sleep on a wake-up socket that each submission rings (see shared.wakeup).
        if self._doorbell is None:
            self._doorbell = WakeSocket(self.path)

    def wait_for_work(self, timeout: float) -> None:
        self.listen()
        assert self._doorbell is not None
        self._doorbell.wait(timeout)

    def close(self) -> None:
        if self._doorbell is not None:
            self._doorbell.close()
            self._doorbell = None
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()

    def explain_claim(self) -> str:
        with self._connect() as conn:
            return "\n".join(row["detail"] for row in conn.execute(sqlite_sql.EXPLAIN_CLAIM))
