"""PostgreSQL backend, for many API servers and worker hosts sharing one queue.

Claims use `FOR UPDATE SKIP LOCKED`; an insert trigger NOTIFYs idle workers, which LISTEN
on a connection of their own (unless DATABASE_POLL_ONLY, for poolers that break LISTEN).
psycopg is imported only when this backend is selected.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from shared import postgres_sql
from shared.errors import StoreBusy, StoreError, StoreUnavailable
from shared.metrics_buckets import BUCKETS_BY_METRIC
from shared.sql_store import SqlStore

logger = logging.getLogger(__name__)

SCHEMA_VERSION = len(postgres_sql.MIGRATIONS)
POOL_TIMEOUT_SECONDS = 10.0
# While LISTENing, an idle worker still looks for work this often, in case a NOTIFY was missed.
LISTEN_SAFETY_POLL_SECONDS = 1.0


def _one(cursor: psycopg.Cursor[Any]) -> Any:
    """The single row of a query that always returns one."""
    row = cursor.fetchone()
    assert row is not None
    return row


class PostgresStore(SqlStore):
    """A store on a PostgreSQL database, through a small connection pool per process."""

    sql = postgres_sql.PostgresQueries

    def __init__(self, url: str, busy_timeout_ms: int = 5000, poll_only: bool = False, pool_size: int = 10) -> None:
        self.url = url
        self.busy_timeout_ms = busy_timeout_ms
        self.poll_only = poll_only
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
    def _transaction(self, durable: bool = False) -> Iterator[psycopg.Connection[Any]]:
        with self._connect(durable, transaction=True) as conn:
            yield conn

    @contextlib.contextmanager
    def _connect(self, durable: bool = False, transaction: bool = False) -> Iterator[psycopg.Connection[Any]]:
        # Every commit is durable here (synchronous_commit is the server's business).
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
        with self._transaction() as conn:
            conn.execute(postgres_sql.SCHEMA_LOCK)
            conn.execute(postgres_sql.SCHEMA_VERSION_TABLE)
            version = _one(conn.execute(postgres_sql.SELECT_VERSION))["version"] or 0
            if version > SCHEMA_VERSION:
                raise StoreError(f"database has schema version {version}; this code knows up to {SCHEMA_VERSION}")
            for number, statements in enumerate(postgres_sql.MIGRATIONS[version:], start=version + 1):
                for statement in statements:
                    conn.execute(statement)
                conn.execute(postgres_sql.RECORD_VERSION, {"version": number})
            for metric, bounds in BUCKETS_BY_METRIC.items():
                conn.execute(postgres_sql.SEED_BUCKETS, {"metric": metric, "bounds": list(map(float, bounds))})

    def _usage_shard(self) -> int:
        return random.randrange(postgres_sql.SHARDS)

    def finished_among(self, task_ids: list[str]) -> list[str]:
        with self._connect() as conn:
            return [row["id"] for row in conn.execute(postgres_sql.FINISHED_AMONG, {"ids": task_ids})]

    def listen(self) -> None:
        if self.poll_only or (self._listener is not None and not self._listener.closed):
            return
        try:
            self._listener = psycopg.connect(self.url, autocommit=True)
            self._listener.execute(postgres_sql.LISTEN)
        except psycopg.Error as error:
            logger.warning("cannot LISTEN yet, polling until the database answers: %s", error)
            self._listener = None

    def wait_for_work(self, timeout: float) -> None:
        """Block until a NOTIFY says a task arrived; the poll behind it is slow (a safety net only)."""
        if self.poll_only:
            time.sleep(timeout)
            return
        try:
            self.listen()
            if self._listener is None:
                time.sleep(min(timeout, 1.0))
                return
            for _ in self._listener.notifies(timeout=max(timeout, LISTEN_SAFETY_POLL_SECONDS), stop_after=1):
                pass
        except psycopg.Error as error:
            logger.warning("LISTEN connection failed, polling instead until it is back: %s", error)
            if self._listener is not None:
                self._listener.close()
            self._listener = None
            time.sleep(min(timeout, 1.0))

    def explain_claim(self) -> str:
        with self._connect() as conn:
            plan = conn.execute(postgres_sql.EXPLAIN_CLAIM).fetchone()
        return json.dumps(plan)
