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
import select
import time
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from shared import postgres_sql, rows
from shared.errors import ConnectionLost, StoreBusy, StoreError, StoreFull, StoreUnavailable
from shared.metrics_buckets import BUCKETS_BY_METRIC
from shared.models import Task
from shared.sql_store import SqlStore, read_only
from shared.wakeup import wait_readable

logger = logging.getLogger(__name__)

SCHEMA_VERSION = len(postgres_sql.MIGRATIONS)
POOL_TIMEOUT_SECONDS = 10.0
# A connection the server closed is reopened at once; if that fails (the server is down), the pool
# tries again for this long, then leaves it to the next request, which tries at once.
RECONNECT_SECONDS = 2.0
# A request waits for a connection in slices this long. Between two, it connects to the server
# itself, once: if the server is gone the request fails now instead of waiting the whole
# POOL_TIMEOUT_SECONDS, and each new slice lets the pool try to connect again at once, so the
# service serves again within about a second of the server being back.
CHECKOUT_SLICE_SECONDS = 1.0
PROBE_TIMEOUT_SECONDS = 2  # libpq's connect_timeout: whole seconds, 2 at least
# While LISTENing, an idle worker still looks for work this often, in case a NOTIFY was missed.
LISTEN_SAFETY_POLL_SECONDS = 1.0
# A database host that vanishes without closing its connections (a power cut, a network split)
# would leave a request, a lease renewal or an idle LISTEN waiting on a dead socket for TCP's own
# 15 minutes or 2 hours. With these libpq settings a connection is given up within about
# DEAD_CONNECTION_SECONDS: a new one within connect_timeout, one with a query in flight after
# tcp_user_timeout, an idle one after the keepalive probes go unanswered. A DATABASE_URL that
# sets any of them keeps its own value (they do nothing on a Unix socket).
DEAD_CONNECTION_SECONDS = 20
DEAD_CONNECTION_SETTINGS = {
    "connect_timeout": "5",
    "keepalives": "1",
    "keepalives_idle": "5",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": str(DEAD_CONNECTION_SECONDS * 1000),
}


# The server's side of each connection gets the same limits (its settings of the same meaning,
# asked for in the startup packet's `options`). A client that vanishes in mid-transaction (its host
# lost power, its network split) would otherwise keep its session, and the row locks of its open
# transaction, for TCP's 2 hours: the same worker's retry on a new connection, housekeeping and
# other workers' writes to those rows would all wait on a client that is gone. These need
# PostgreSQL 12 or newer (tcp_user_timeout).
SERVER_SIDE_NAMES = {
    "keepalives_idle": "tcp_keepalives_idle",
    "keepalives_interval": "tcp_keepalives_interval",
    "keepalives_count": "tcp_keepalives_count",
    "tcp_user_timeout": "tcp_user_timeout",
}


def with_dead_connection_limits(url: str) -> str:
    """The connection string with DEAD_CONNECTION_SETTINGS added where it sets none of its own, and
    the server asked to apply the same limits (those in effect) to its side of the connection."""
    given = conninfo_to_dict(url)
    limits = {**DEAD_CONNECTION_SETTINGS, **given}
    options = str(given.get("options") or "")
    server_side = [f"{name}={limits[key]}" for key, name in SERVER_SIDE_NAMES.items() if name not in options]
    added = {k: v for k, v in DEAD_CONNECTION_SETTINGS.items() if k not in given}
    return with_options(make_conninfo(url, **added), *server_side)


def with_options(url: str, *settings: str) -> str:
    """The connection string with more server settings (`name=value`) added to its `options`."""
    options = str(conninfo_to_dict(url).get("options") or "")
    return make_conninfo(url, options=" ".join([options, *(f"-c {setting}" for setting in settings)]).strip())


def _one(cursor: psycopg.Cursor[Any]) -> Any:
    """The single row of a query that always returns one."""
    row = cursor.fetchone()
    assert row is not None
    return row


def _reason(error: BaseException) -> str:
    """A driver error on one line: libpq adds hints on lines of their own."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _closed_by_server(conn: psycopg.Connection[Any]) -> str | None:
    """Why the server closed this idle connection, or None while it can be used.

    An idle connection has nothing to read unless the server spoke: a goodbye (the connection was
    terminated, the server is shutting down) or, harmlessly, a notice. Only then is it asked,
    with an empty statement; a live one costs no round trip.
    """
    if conn.closed:
        return "the connection was closed"
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    if not poller.poll(0):
        return None
    try:
        ConnectionPool.check_connection(conn)
    except psycopg.Error as error:
        return _reason(error)
    return None


class _ReportedByTheStore(logging.Filter):
    """psycopg_pool warns about each connection it discards or fails to open, each attempt again
    (libpq's hints on lines of their own); the store reports the same, once per request it failed
    or connection it replaced, in one line of its own."""

    REPORTED = ("discarding closed connection", "error connecting in", "reconnection attempt in pool")

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.REPORTED)


logging.getLogger("psycopg.pool").addFilter(_ReportedByTheStore())


class PostgresStore(SqlStore):
    """A store on a PostgreSQL database, through a small connection pool per process."""

    sql = postgres_sql.PostgresQueries

    def __init__(self, url: str, busy_timeout_ms: int = 5000, poll_only: bool = False, pool_size: int = 10) -> None:
        self.url = with_dead_connection_limits(url)
        self.busy_timeout_ms = busy_timeout_ms
        self.poll_only = poll_only
        self._listener: psycopg.Connection[Any] | None = None
        self._listen_failing = False
        # lock_timeout plays SQLite's busy timeout: past it the API answers 503, not a hang.
        self.pool = ConnectionPool(
            with_options(self.url, f"lock_timeout={busy_timeout_ms}"),
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, "row_factory": dict_row},
            timeout=POOL_TIMEOUT_SECONDS,
            reconnect_timeout=RECONNECT_SECONDS,
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
        conn = self._checkout()
        try:
            if transaction:
                with conn.transaction():
                    yield conn
            else:
                yield conn
        except (pg_errors.LockNotAvailable, pg_errors.QueryCanceled, pg_errors.DeadlockDetected) as error:
            raise StoreBusy(f"database is busy: {_reason(error)}") from error
        except pg_errors.DiskFull as error:  # the server could not extend a file: nothing was stored
            raise StoreFull(f"the disk holding the database is full: {_reason(error)}") from error
        except psycopg.OperationalError as error:
            if conn.broken:
                raise ConnectionLost(f"lost the database connection: {_reason(error)}") from error
            raise StoreUnavailable(f"cannot use the database: {_reason(error)}") from error
        except psycopg.Error as error:
            raise StoreError(str(error)) from error
        finally:
            # A broken connection is not lent again: the pool closes it and opens another.
            self.pool.putconn(conn)

    def _checkout(self) -> psycopg.Connection[Any]:
        """A pooled connection the server has not closed; those it has are handed back to be replaced."""
        if not self._opened:
            self.pool.open(wait=False)
            self._opened = True
        deadline = time.monotonic() + POOL_TIMEOUT_SECONDS
        while True:
            try:
                conn = self.pool.getconn(min(CHECKOUT_SLICE_SECONDS, deadline - time.monotonic()))
            except PoolTimeout as error:
                self._probe()  # the pool is busy, or the server is gone: which?
                if time.monotonic() < deadline:
                    continue
                raise StoreUnavailable(f"no database connection within {POOL_TIMEOUT_SECONDS:g} s") from error
            except psycopg.Error as error:
                raise StoreUnavailable(f"cannot connect to the database: {_reason(error)}") from error
            closed = _closed_by_server(conn)
            if closed is None:
                return conn
            logger.warning("database connection closed by the server, replacing it: %s", closed)
            self.pool.putconn(conn)

    def _probe(self) -> None:
        """Raise StoreUnavailable unless the server takes a new connection."""
        try:
            psycopg.connect(self.url, connect_timeout=PROBE_TIMEOUT_SECONDS).close()
        except psycopg.Error as error:
            raise StoreUnavailable(f"cannot connect to the database: {_reason(error)}") from error

    def close(self) -> None:
        self._close_listener()
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

    @read_only
    def finished_among(self, task_ids: list[str]) -> list[Task]:
        with self._connect() as conn:
            return [rows.to_task(row) for row in conn.execute(postgres_sql.FINISHED_AMONG, {"ids": task_ids})]

    def listen(self) -> None:
        if not self.poll_only and (self._listener is None or self._listener.closed):
            self._open_listener()

    def _open_listener(self) -> bool:
        """Connect and LISTEN; False while the database cannot be reached (said once, not per try)."""
        try:
            self._listener = psycopg.connect(self.url, autocommit=True)
            self._listener.execute(postgres_sql.LISTEN)
        except psycopg.Error as error:
            self._close_listener()
            if not self._listen_failing:
                logger.warning("cannot LISTEN, polling until the database answers: %s", _reason(error))
            self._listen_failing = True
            return False
        if self._listen_failing:
            logger.info("listening for new tasks again")
        self._listen_failing = False
        return True

    def _close_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def wait_for_work(self, timeout: float, interrupt: int | None = None) -> None:
        """Block until a NOTIFY says a task arrived; the poll behind it is slow (a safety net only).
        The wait is a select() of our own rather than psycopg's, so that `interrupt` can end it."""
        if self.poll_only:
            wait_readable(timeout, interrupt)
            return
        if self._listener is None or self._listener.closed:
            # Not listening: a NOTIFY sent meanwhile was missed, so once LISTEN is back the caller
            # looks for work at once; while it cannot be, it polls.
            if not self._open_listener():
                wait_readable(min(timeout, LISTEN_SAFETY_POLL_SECONDS), interrupt)
            return
        try:
            if self._take_notifies():  # one that came with an earlier answer, or just now
                return
            listening = self._listener.fileno()
            if listening in wait_readable(max(timeout, LISTEN_SAFETY_POLL_SECONDS), listening, interrupt):
                self._take_notifies()
        except psycopg.Error as error:
            # Cut or the server went away: back to the caller, which looks for work, then LISTENs again.
            logger.warning("LISTEN connection lost, listening again: %s", _reason(error))
            self._close_listener()

    def _take_notifies(self) -> bool:
        """Read the notifications waiting on the LISTEN connection, without blocking."""
        assert self._listener is not None
        return any(True for _ in self._listener.notifies(timeout=0))

    def _finishing(self, conn: psycopg.Connection[Any]) -> None:
        if not self.poll_only:
            conn.execute(postgres_sql.NOTIFY_FINISHED)  # sent with the commit, in the same round trip

    def finished_bell(self) -> FinishedBell | None:
        if self.poll_only:
            return None
        try:
            return FinishedBell(self.url)
        except psycopg.Error as error:
            logger.warning("cannot LISTEN for finished tasks, long-polls poll meanwhile: %s", _reason(error))
            return None

    @read_only
    def explain_claim(self) -> str:
        with self._connect() as conn:
            plan = conn.execute(postgres_sql.EXPLAIN_CLAIM).fetchone()
        return json.dumps(plan)


class FinishedBell:
    """An API's LISTEN for finished tasks, on a connection of its own that its event loop watches
    and reads without blocking."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True, connect_timeout=PROBE_TIMEOUT_SECONDS)
        self.conn.execute(postgres_sql.LISTEN_FINISHED)

    def fileno(self) -> int:
        return self.conn.fileno()

    def drain(self) -> None:
        pgconn = self.conn.pgconn
        pgconn.consume_input()  # raises once the server has closed the connection
        while pgconn.notifies() is not None:
            pass

    def close(self) -> None:
        self.conn.close()
