"""SQLite backend: the database file is both the task store and the queue."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from shared import rows, sqlite_sql
from shared.errors import QuotaExceeded, StoreBusy, StoreError, StoreFull, StoreUnavailable
from shared.group_commit import GroupCommit
from shared.metrics_buckets import BUCKETS_BY_METRIC
from shared.models import SubmitOutcome, Task
from shared.sql_store import QueueFull, SqlStore
from shared.wakeup import FINISHED_TASKS, WakeSocket, wake_all

SCHEMA_VERSION = len(sqlite_sql.MIGRATIONS)


class _ThreadToken:
    """Kept only in one thread's local storage: it is collected when the thread ends."""

    __slots__ = ("__weakref__",)


class SqliteStore(SqlStore):
    """A store on one SQLite file in WAL mode.

    Each thread keeps one connection (opening one and parsing the schema costs more than most
    statements here), closed when the thread ends; close() closes them all, and the API and the
    worker call it in `finally` when they stop. Only initialize() may create the file. Every
    operation first checks, with one stat(), that the path still names the file this process
    started on: a database removed or moved away is refused (StoreUnavailable) until it is back,
    and another file put in its place is never opened: SQLite would pair it with the old file's
    write-ahead log (`-wal`), which the old file's connections keep at the path, and corrupt it.
    """

    sql = sqlite_sql.SqliteQueries

    def __init__(self, path: str, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._doorbell: WakeSocket | None = None
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._file: tuple[int, int] | None = None  # (device, inode) of the database this process uses
        # Concurrent submissions share durable commits (one fsync for all that waited).
        self._submissions = GroupCommit(lambda: self._transaction(durable=True), (QueueFull, QuotaExceeded))

    def _check_file(self) -> None:
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            raise StoreUnavailable(f"database file {self.path!r} is missing (removed or moved away)") from None
        identity = (found.st_dev, found.st_ino)
        if self._file is None:
            self._file = identity
        elif identity != self._file:
            raise StoreUnavailable(
                f"database file {self.path!r} was replaced by another file; to use it, stop the service, "
                f"delete {self.path}-wal and {self.path}-shm (they belong to the old file), and start it again"
            )

    def _connection(self, create: bool = False) -> sqlite3.Connection:
        if not create:
            self._check_file()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # mode=rw: a database that went away is never re-created empty under running processes.
            # isolation_level=None: autocommit, so a lone statement is committed when execute
            # returns, and multi-statement work says BEGIN IMMEDIATE itself. Only this thread uses
            # it; check_same_thread=False lets close() end it from another.
            conn = sqlite3.connect(
                f"file:{urllib.parse.quote(self.path)}?mode={'rwc' if create else 'rw'}",
                uri=True,
                timeout=self.busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.row_factory = sqlite3.Row
            conn.create_function(sqlite_sql.CLOCK_FUNCTION, 0, time.time)
            with self._lock:
                self._connections.append(conn)
            self._local.conn = conn
            # The connection ends with its thread: the API's thread pool (anyio) retires threads idle
            # for 10 s and starts new ones when requests come back, and each would otherwise leave a
            # connection open (two descriptors and its page cache, for as long as the process runs).
            self._local.token = _ThreadToken()
            weakref.finalize(self._local.token, self._release, conn)
        if create:
            self._check_file()
        return conn

    def _release(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if conn in self._connections:
                self._connections.remove(conn)
        conn.close()

    @contextlib.contextmanager
    def _connect(self, durable: bool = False, create: bool = False) -> Iterator[sqlite3.Connection]:
        try:
            conn = self._connection(create)
            # In WAL mode every commit survives a killed process. FULL also syncs it to disk before
            # returning, so an acknowledged submission survives power loss too; the worker's own
            # bookkeeping skips that fsync: were a claim or a result lost with the power, the
            # lease would expire and the task run again.
            conn.execute("PRAGMA synchronous = FULL" if durable else "PRAGMA synchronous = NORMAL")
            yield conn
        except sqlite3.OperationalError as error:
            text = str(error)
            if error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_FULL:
                raise StoreFull(f"the disk holding database {self.path!r} is full: {text}") from error
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
                conn.execute("COMMIT")
            except BaseException:
                # After some errors (a full disk) SQLite has rolled back already: a second
                # ROLLBACK would fail and hide the first error.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _claim_context(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        # BEGIN IMMEDIATE takes the write lock before the claim's subquery reads, so two workers
        # can never pick the same row.
        return self._transaction()

    def initialize(self) -> None:
        with self._connect(create=True) as conn:
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

    def finished_among(self, task_ids: list[str]) -> list[Task]:
        found: list[Task] = []
        with self._connect() as conn:
            for start in range(0, len(task_ids), 500):
                chunk = task_ids[start : start + 500]
                query = sqlite_sql.FINISHED_AMONG.format(marks=",".join("?" * len(chunk)))
                found += [rows.to_task(row) for row in conn.execute(query, chunk)]
        return found

    def _submission(self, attempt: Callable[[Any], tuple[SubmitOutcome, str]]) -> tuple[SubmitOutcome, str]:
        return self._submissions.run(attempt)

    def _task_created(self) -> None:
        wake_all(self.path)

    def _tasks_finished(self) -> None:
        wake_all(self.path, FINISHED_TASKS)

    def finished_bell(self) -> WakeSocket | None:
        bell = WakeSocket(self.path, FINISHED_TASKS)
        return bell if bell.sock is not None else None

    def listen(self) -> None:
        # Idle workers sleep on a wake-up socket that each submission rings (see shared.wakeup).
        if self._doorbell is None:
            self._doorbell = WakeSocket(self.path)

    def wait_for_work(self, timeout: float, interrupt: int | None = None) -> None:
        self.listen()
        assert self._doorbell is not None
        self._doorbell.wait(timeout, interrupt)

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
