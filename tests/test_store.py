"""The store's queue semantics on a real SQLite file: claim order, leases, guarded writes, recovery."""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg.rows import tuple_row

from harness.databases import FreshDatabase, admin_url
from shared import sqlite_sql as sql
from shared.errors import ConnectionLost, StoreError
from shared.models import Finish, LeaseStatus, NewTask, RunDetails, SubmitOutcome, TaskStatus
from shared.queries import tag_filter
from shared.sqlite_store import SqliteStore
from shared.store import DATABASE_CLOCK, Store
from tests.services import open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh store of the session's backend (--backend): the same contract holds on both."""
    database = FreshDatabase(tmp_path)
    s = open_store(database)
    try:
        s.initialize()
        s.initialize()  # idempotent
        yield s
    finally:
        s.close()
        database.drop()


def test_claims_oldest_first_and_never_twice(store: Store) -> None:
    for n in range(3):
        store.create_task(f"t{n}", NewTask("c", 10, None), now=100.0 + n)
    first = store.claim_next("w1", now=200.0, lease_seconds=30)
    second = store.claim_next("w2", now=200.0, lease_seconds=30)
    assert first is not None and second is not None
    assert (first.task_id, second.task_id) == ("t0", "t1")
    assert first.attempt == 1
    task = store.get_task("t0")
    assert task is not None and task.status is TaskStatus.PENDING and task.worker_id == "w1"
    assert task.started_at == 200.0


def test_empty_queue_claims_nothing(store: Store) -> None:
    assert store.queue_depth() == 0
    assert store.claim_next("w1", now=1.0, lease_seconds=30) is None


def test_expired_lease_is_requeued_and_reclaimed_with_next_attempt(store: Store) -> None:
    store.create_task("t", NewTask("c", 10, 5), now=1.0)
    stale = store.claim_next("w1", now=10.0, lease_seconds=30)
    assert stale is not None
    assert store.recover_expired(now=39.0, max_attempts=3) == []  # not expired yet
    assert store.recover_expired(now=41.0, max_attempts=3) == [("t", TaskStatus.SUBMITTED, 1)]
    fresh = store.claim_next("w2", now=42.0, lease_seconds=30)
    assert fresh is not None and fresh.attempt == 2

    # The stale worker can no longer renew, complete or fail the task.
    assert store.renew_lease(stale, "w1", lease_seconds=57.0, now=43.0) is LeaseStatus.LOST
    assert not store.complete(stale, "w1", {"0": 10}, now=43.0, details=RunDetails())
    assert not store.fail(stale, "w1", "X: late", now=43.0, details=RunDetails())
    assert not store.mark_cancelled(stale, "w1", now=43.0)
    assert store.complete(fresh, "w2", {"1": 10}, now=44.0, details=RunDetails(num_qubits=1, depth=1))
    task = store.get_task("t")
    assert task is not None
    assert task.status is TaskStatus.COMPLETED and task.result == {"1": 10} and task.worker_id == "w2"
    assert task.attempts == 2


def test_too_many_interruptions_fail_the_task(store: Store) -> None:
    store.create_task("t", NewTask("c", 10, None), now=1.0)
    assert store.claim_next("w", now=10.0, lease_seconds=5) is not None
    assert store.recover_expired(now=16.0, max_attempts=2) == [("t", TaskStatus.SUBMITTED, 1)]
    assert store.claim_next("w", now=17.0, lease_seconds=5) is not None
    assert store.recover_expired(now=23.0, max_attempts=2) == [("t", TaskStatus.FAILED, 2)]
    task = store.get_task("t")
    assert task is not None and task.status is TaskStatus.FAILED
    assert task.error == (
        "WorkerLost: the task was interrupted 2 times (its worker stopped renewing the lease); "
        "giving up after MAX_ATTEMPTS=2"
    )


def test_renewed_lease_is_not_recovered(store: Store) -> None:
    store.create_task("t", NewTask("c", 10, None), now=1.0)
    claim = store.claim_next("w", now=10.0, lease_seconds=5)
    assert claim is not None
    assert store.renew_lease(claim, "w", lease_seconds=20.0, now=10.0) is LeaseStatus.HELD
    assert store.recover_expired(now=20.0, max_attempts=3) == []


def test_release_returns_the_task_without_spending_an_attempt(store: Store) -> None:
    store.create_task("t", NewTask("c", 10, None), now=1.0)
    claim = store.claim_next("w", now=10.0, lease_seconds=5)
    assert claim is not None
    assert store.release(claim, "w")
    task = store.get_task("t")
    assert task is not None and task.status is TaskStatus.SUBMITTED and task.attempts == 0
    again = store.claim_next("w", now=11.0, lease_seconds=5)
    assert again is not None and again.attempt == 1


@pytest.mark.backend_only("sqlite")
def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="schema version 99"):
        SqliteStore(str(path)).initialize()


def test_cancel_submitted_at_once_pending_by_request_finished_not_at_all(store: Store) -> None:
    for name in ("finished", "running", "waiting"):
        store.create_task(name, NewTask("c", 10, None), now=1.0)
    assert store.cancel("nope", now=2.0) is None
    finished = store.claim_next("w", now=2.0, lease_seconds=30)
    running = store.claim_next("w", now=2.0, lease_seconds=30)
    assert finished is not None and running is not None
    assert (finished.task_id, running.task_id) == ("finished", "running")
    assert store.complete(finished, "w", {"0": 10}, now=3.0, details=RunDetails())

    waiting = store.cancel("waiting", now=4.0)  # still submitted: cancelled at once
    assert waiting is not None and waiting.changed and waiting.status is TaskStatus.CANCELLED
    requested = store.cancel("running", now=4.0)  # pending: its worker is asked to stop it
    assert requested is not None and requested.changed and requested.status is TaskStatus.PENDING
    assert store.renew_lease(running, "w", lease_seconds=30.0, now=20.0) is LeaseStatus.CANCEL_REQUESTED
    assert store.mark_cancelled(running, "w", now=5.0)

    for name, state in (
        ("finished", TaskStatus.COMPLETED),
        ("running", TaskStatus.CANCELLED),
        ("waiting", TaskStatus.CANCELLED),
    ):
        outcome = store.cancel(name, now=6.0)
        assert outcome is not None and not outcome.changed and outcome.status is state


def test_finished_among_gives_the_finished_tasks_whole(store: Store) -> None:
    """What a long-poll answers with: only completed, failed and cancelled tasks, exactly as
    get_task reads them, whatever else the list holds."""
    for name in ("done", "broken", "running", "waiting", "dropped"):
        store.create_task(name, NewTask("c", 10, None), now=1.0)
    done, broken, running = (store.claim_next("w", now=2.0, lease_seconds=30) for _ in range(3))
    assert done is not None and broken is not None and running is not None
    assert [done.task_id, broken.task_id, running.task_id] == ["done", "broken", "running"]
    assert store.complete(done, "w", {"0": 6, "1": 4}, now=3.0, details=RunDetails(duration_ms=1.5))
    assert store.fail(broken, "w", "ParseError: line 1", now=3.0, details=RunDetails())
    assert store.cancel("dropped", now=3.0) is not None
    ids = ["done", "broken", "running", "waiting", "dropped", "unknown"] + [f"none{i}" for i in range(600)]
    found = {task.id: task for task in store.finished_among(ids)}
    assert set(found) == {"done", "broken", "dropped"}
    for task_id, task in found.items():
        assert task == store.get_task(task_id)
    assert found["done"].result == {"0": 6, "1": 4} and found["broken"].error == "ParseError: line 1"


def test_leases_and_heartbeats_run_on_the_database_clock(store: Store) -> None:
    """What the service passes (DATABASE_CLOCK): the database stamps and judges every lease and
    heartbeat by its own clock, which is this machine's here."""
    store.create_task("t", NewTask("c", 10, None), now=time.time())
    before = time.time()
    claim = store.claim_next("w", DATABASE_CLOCK, lease_seconds=30)
    after = time.time()
    assert claim is not None
    task = store.get_task("t")
    assert task is not None and task.started_at is not None and task.lease_expires_at is not None
    assert before - 0.01 <= task.started_at <= after + 0.01
    assert task.lease_expires_at == pytest.approx(task.started_at + 30, abs=0.01)
    assert store.recover_expired(DATABASE_CLOCK, max_attempts=3) == []
    assert store.renew_lease(claim, "w", lease_seconds=-1) is LeaseStatus.HELD  # ran out a second ago
    assert store.recover_expired(DATABASE_CLOCK, max_attempts=3) == [("t", TaskStatus.SUBMITTED, 1)]

    store.beat_worker("w", "here", 7, None)
    store.beat_worker("w", "here", 7, "t")
    assert store.live_worker_count(30, "here") == (1, 1)
    assert store.live_worker_count(30, "elsewhere") == (1, 0)
    (worker,) = store.stats(live_within=30).workers
    assert worker.task_id == "t" and before - 0.01 <= worker.started_at <= worker.last_heartbeat <= time.time() + 0.01
    store.forget_workers(silent_for=30)
    assert store.live_worker_count(30, "here") == (1, 1)
    store.forget_workers(silent_for=-1)
    assert store.live_worker_count(30, "here") == (0, 0)


def test_a_worker_puts_back_every_claim_it_holds_spending_no_attempt(store: Store) -> None:
    for n in range(3):
        store.create_task(f"t{n}", NewTask("c", 10, None), now=1.0)
    assert [c.task_id for c in store.claim("w1", now=2.0, lease_seconds=30, limit=2)] == ["t0", "t1"]
    assert store.claim_next("w2", now=2.0, lease_seconds=30) is not None
    assert sorted(store.release_claims("w1")) == ["t0", "t1"]
    assert store.release_claims("w1") == []
    for name, status, attempts in (("t0", TaskStatus.SUBMITTED, 0), ("t1", TaskStatus.SUBMITTED, 0)):
        task = store.get_task(name)
        assert task is not None and (task.status, task.attempts, task.worker_id) == (status, attempts, None)
    other = store.get_task("t2")
    assert other is not None and other.status is TaskStatus.PENDING and other.worker_id == "w2"


def test_expired_lease_of_a_task_asked_to_cancel_is_cancelled(store: Store) -> None:
    store.create_task("t", NewTask("c", 10, None), now=1.0)
    assert store.claim_next("w", now=2.0, lease_seconds=5) is not None
    store.cancel("t", now=3.0)
    assert store.recover_expired(now=10.0, max_attempts=3) == [("t", TaskStatus.CANCELLED, 1)]


def test_pages_are_newest_first_without_gaps_or_duplicates(store: Store) -> None:
    for n in range(7):
        store.create_task(f"t{n}", NewTask("c", 10, None), now=float(n))
    seen, before = [], None
    while True:
        page, before = store.list_tasks(None, before, 3)
        seen += [t.id for t in page]
        if before is None:
            break
    assert seen == [f"t{n}" for n in reversed(range(7))]
    only, nxt = store.list_tasks(TaskStatus.COMPLETED, None, 10)
    assert only == [] and nxt is None


def test_stats_follow_every_transition(store: Store) -> None:
    for n in range(3):
        store.create_task(f"t{n}", NewTask("c", 10, None), now=100.0)
    claim = store.claim_next("w", now=100.5, lease_seconds=30)
    assert claim is not None
    store.complete(claim, "w", {"0": 10}, now=102.0, details=RunDetails())
    store.cancel("t1", now=103.0)
    stats = store.stats(live_within=1e9, now=103.0)
    assert stats.counts[TaskStatus.SUBMITTED] == 1
    assert stats.counts[TaskStatus.COMPLETED] == 1 and stats.counts[TaskStatus.CANCELLED] == 1
    assert stats.submitted_total == 3
    assert stats.finished_total[TaskStatus.COMPLETED] == 1 and stats.finished_total[TaskStatus.CANCELLED] == 1
    assert stats.queue_wait.count == 1 and stats.queue_wait.total == 0.5
    assert dict(stats.queue_wait.buckets)[0.5] == 1 and dict(stats.queue_wait.buckets)[0.25] == 0
    assert stats.run_time.count == 1 and stats.run_time.total == 1.5


@pytest.mark.backend_only("sqlite")
def test_migrates_a_version_1_database(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path)
    for statement in sql.MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("INSERT INTO tasks (id, status, circuit, shots, created_at) VALUES ('old', 'completed', 'c', 5, 1)")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    store = SqliteStore(str(path))
    store.initialize()
    task = store.get_task("old")
    assert task is not None and task.status is TaskStatus.COMPLETED
    stats = store.stats(live_within=1e9, now=2.0)
    assert stats.counts[TaskStatus.COMPLETED] == 1 and stats.submitted_total == 1


@pytest.mark.backend_only("postgres")
def test_postgres_newer_schema_is_refused(tmp_path: Path) -> None:
    import psycopg

    from shared.postgres_store import PostgresStore

    database = FreshDatabase(tmp_path)
    store = PostgresStore(database.url, pool_size=1)
    try:
        store.initialize()
        with psycopg.connect(database.url, autocommit=True) as conn:
            conn.execute("INSERT INTO qtq_schema (version) VALUES (99)")
        with pytest.raises(StoreError, match="schema version 99"):
            store.initialize()
    finally:
        store.close()
        database.drop()


def _tcp_options(fd: int) -> tuple[int, int, int, int, int]:
    """SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT and TCP_USER_TIMEOUT of a socket."""
    with socket.socket(fileno=os.dup(fd)) as sock:
        return (
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
        )


SERVER_SIDE_LIMITS = ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count", "tcp_user_timeout")


def _server_setting(conn: Any, name: str) -> str:
    """A setting of the server's session on this connection, as SHOW prints it."""
    with conn.cursor(row_factory=tuple_row) as cursor:
        return str(cursor.execute(f"SHOW {name}").fetchone()[0])


@pytest.mark.backend_only("postgres")
def test_postgres_connections_give_up_on_a_vanished_host(tmp_path: Path) -> None:
    """Every connection to the server (the pool's, a worker's LISTEN, an API's finished-task
    LISTEN) has TCP keepalives and a user timeout, so a host that disappears without closing them
    (a power cut, a network split) is given up within about 20 s, not TCP's 15 minutes or 2
    hours; the server applies the same to its side; a DATABASE_URL that sets its own value keeps
    it, on both sides."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from shared.postgres_store import PostgresStore

    host = str(conninfo_to_dict(admin_url()).get("host", ""))
    if not host or host.startswith("/"):
        pytest.fail(f"TEST_DATABASE_URL must reach the server over TCP for this check, not a Unix socket ({host!r})")
    database = FreshDatabase(tmp_path)
    own = make_conninfo(database.url, keepalives_idle=60, options="-c work_mem=8MB")
    stores = [PostgresStore(database.url, pool_size=1), PostgresStore(own, pool_size=1)]
    try:
        for store, idle in zip(stores, (5, 60), strict=True):
            store.initialize()
            store.listen()
            bell = store.finished_bell()
            assert bell is not None and store._listener is not None
            with store._connect() as conn:
                connections = {"pool": conn, "listen": store._listener, "finished": bell.conn}
                for name, connection in connections.items():
                    assert _tcp_options(connection.fileno()) == (1, idle, 5, 3, 20_000), name
                    # The server's side: a client gone in mid-transaction must not keep its locks.
                    server_side = [_server_setting(connection, setting) for setting in SERVER_SIDE_LIMITS]
                    assert server_side == [str(idle), "5", "3", "20000"], name
                assert _server_setting(conn, "lock_timeout") == "5s"
                if idle == 60:  # the URL's own options are kept beside the service's
                    assert _server_setting(conn, "work_mem") == "8MB"
            bell.close()
    finally:
        for store in stores:
            store.close()
        database.drop()


@pytest.mark.backend_only("postgres")
def test_hosts_starting_together_create_the_schema_once(tmp_path: Path) -> None:
    """Six processes' stores initialize one fresh database at the same moment (hosts started
    together): each succeeds, and every migration is applied and recorded exactly once."""
    from concurrent.futures import ThreadPoolExecutor

    import psycopg

    from shared import postgres_sql
    from shared.postgres_store import PostgresStore

    database = FreshDatabase(tmp_path)
    stores = [PostgresStore(database.url, pool_size=1) for _ in range(6)]
    try:
        start = threading.Barrier(len(stores))

        def initialize(store: Store) -> None:
            start.wait(10)
            store.initialize()

        with ThreadPoolExecutor(len(stores)) as pool:
            list(pool.map(initialize, stores))
        with psycopg.connect(database.url) as conn:
            versions = [row[0] for row in conn.execute("SELECT version FROM qtq_schema ORDER BY version")]
        assert versions == list(range(1, len(postgres_sql.MIGRATIONS) + 1)), versions
        stores[0].create_task("t", NewTask("c", 10), now=1.0)
        assert stores[-1].get_task("t") is not None
    finally:
        for store in stores:
            store.close()
        database.drop()


class CutUnderReads(SqliteStore):
    """A store whose next `cuts` connections are lost as they are used (a connection cut)."""

    cuts = 0

    def _connect(self, durable: bool = False, create: bool = False) -> Any:
        if self.cuts:
            self.cuts -= 1
            raise ConnectionLost("lost the database connection: server closed the connection unexpectedly")
        return super()._connect(durable, create)


@pytest.mark.database_independent
def test_every_read_a_request_makes_is_asked_again_once_when_its_connection_is_cut(tmp_path: Path) -> None:
    """The key lookup every request makes once keys exist, and the key and usage reads, as the
    task reads: a cut connection costs a second try, not a 503; two in a row do."""
    store = CutUnderReads(str(tmp_path / "tasks.db"))
    store.initialize()
    store.create_task("t", NewTask("c", 10), now=1.0)
    reads: dict[str, Any] = {
        "find_key": lambda: store.find_key("no such hash"),
        "list_keys": store.list_keys,
        "usage": lambda: store.usage(None, 2.0),
        "get_task": lambda: store.get_task("t"),
    }
    for name, read in reads.items():
        store.cuts = 1
        assert read() is not None, name
        store.cuts = 2
        with pytest.raises(ConnectionLost):
            read()


def test_prune_removes_only_old_finished_tasks(store: Store) -> None:
    for name in ("old", "recent", "waiting"):
        store.create_task(name, NewTask("c", 10, None), now=1.0)
    old = store.claim_next("w", now=2.0, lease_seconds=30)
    recent = store.claim_next("w", now=2.0, lease_seconds=30)
    assert old is not None and recent is not None
    store.complete(old, "w", {"0": 10}, now=10.0, details=RunDetails())
    store.fail(recent, "w", "X: y", now=100.0, details=RunDetails())
    assert store.prune_finished(before=50.0, limit=100) == 1
    assert store.get_task("old") is None
    assert store.get_task("recent") is not None and store.get_task("waiting") is not None
    stats = store.stats(live_within=1e9, now=101.0)
    assert stats.counts[TaskStatus.COMPLETED] == 0 and stats.counts[TaskStatus.FAILED] == 1
    assert stats.finished_total[TaskStatus.COMPLETED] == 1, "counters never go down"


def test_claim_finds_the_next_task_through_an_index(store: Store, tmp_path: Path) -> None:
    """With many finished tasks and few waiting ones, the claim must not scan the table."""
    database_rows = 20_000
    if isinstance(store, SqliteStore):
        conn = sqlite3.connect(store.path)
        conn.executemany(
            "INSERT INTO tasks (id, status, circuit, shots, created_at) VALUES (?, ?, 'c', 1, 0)",
            [(f"t{n}", "completed" if n % 100 else "submitted") for n in range(database_rows)],
        )
        conn.commit()
        conn.execute("ANALYZE")
        conn.close()
        plan = store.explain_claim()
        # An index search in seq order: no table scan and no sort.
        assert plan.startswith("SEARCH tasks USING") and "INDEX" in plan, plan
        assert "SCAN" not in plan and "TEMP B-TREE" not in plan, plan
    else:
        import psycopg

        from shared.postgres_store import PostgresStore

        assert isinstance(store, PostgresStore)
        with psycopg.connect(store.url, autocommit=True) as pg:
            pg.execute(
                "INSERT INTO tasks (id, status, circuit, shots, created_at)"
                " SELECT 't' || n, CASE WHEN n %% 100 = 0 THEN 'submitted' ELSE 'completed' END, 'c', 1, 0"
                " FROM generate_series(1, %s) AS n",
                [database_rows],
            )
            pg.execute("ANALYZE tasks")
        plan = store.explain_claim()
        assert '"Node Type": "Index' in plan, plan
        assert "Seq Scan" not in plan and '"Node Type": "Sort"' not in plan, plan


def test_a_new_task_wakes_a_waiting_worker(store: Store) -> None:
    """SQLite's wake-up socket or PostgreSQL's NOTIFY ends a 30-second wait at once."""
    store.listen()
    waiter = threading.Thread(target=store.wait_for_work, args=(30.0,))
    waiter.start()
    store.create_task("t", NewTask("c", 10, None), now=1.0)  # rings even if the wait has not begun yet
    waiter.join(10)
    assert not waiter.is_alive(), "the submission did not wake the waiting worker"


@pytest.mark.backend_only("sqlite")
def test_a_database_deeper_than_a_socket_address_still_wakes_its_workers(tmp_path: Path) -> None:
    """A socket's address holds 107 bytes: a database in a deep folder still gets its doorbells
    (they were left out, with a warning, and every wake-up waited for the next poll)."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    store = SqliteStore(str(deep / "tasks.db"))
    store.initialize()
    try:
        store.listen()
        listeners = os.listdir(deep / "tasks.db.wake")
        assert len(listeners) == 1 and len(str(deep / "tasks.db.wake" / listeners[0])) > 107
        waiter = threading.Thread(target=store.wait_for_work, args=(30.0,))
        waiter.start()
        store.create_task("t", NewTask("c", 10, None), now=1.0)
        waiter.join(10)
        assert not waiter.is_alive(), "the submission did not wake the waiting worker"
    finally:
        store.close()


def test_a_readable_interrupt_ends_the_wait_for_work(store: Store) -> None:
    """The worker's signal bell: a wait given a readable file descriptor returns at once, as it
    must for a stop signal that came just before the wait began."""
    store.listen()
    bell, ring = socket.socketpair()
    with bell, ring:
        ring.send(b"\x0f")
        started = time.monotonic()
        store.wait_for_work(30.0, bell.fileno())
        assert time.monotonic() - started < 10, "the wait did not watch the interrupt"


def test_queued_bytes_bound_the_unfinished_circuits(store: Store) -> None:
    """MAX_QUEUED_BYTES: a submission that would pass the limit stores nothing; finishing,
    cancelling or deleting a task frees its bytes (UTF-8 bytes, not characters)."""
    assert store.create_task("a", NewTask("x" * 400, 10, None), now=1.0, max_queued_bytes=1000)
    assert store.create_task("b", NewTask("π" * 200, 10, None), now=2.0, max_queued_bytes=1000)  # 400 bytes
    assert store.queued_bytes() == 800
    assert not store.create_task("c", NewTask("x" * 201, 10, None), now=3.0, max_queued_bytes=1000)
    assert store.get_task("c") is None
    assert store.create_task("c", NewTask("x" * 200, 10, None), now=3.0, max_queued_bytes=1000)
    claim = store.claim_next("w", now=4.0, lease_seconds=30)
    assert claim is not None and claim.task_id == "a"
    assert store.queued_bytes() == 1000  # running tasks still count
    assert store.complete(claim, "w", {"0": 10}, 5.0, RunDetails())
    assert store.queued_bytes() == 600
    store.cancel("b", 6.0)
    assert store.queued_bytes() == 200
    assert store.create_task("d", NewTask("x" * 800, 10, None), now=7.0, max_queued_bytes=1000)
    assert store.prune_finished(before=100.0, limit=10) == 2  # finished tasks only; their bytes were freed already
    assert store.queued_bytes() == 1000


def test_an_idempotency_key_creates_one_task_and_replays_it(store: Store) -> None:
    def submit(key: str, digest: str, task_id: str, now: float, max_bytes: int = 10**9) -> tuple[SubmitOutcome, str]:
        return store.create_task_once(key, digest, task_id, NewTask("c" * 100, 10), now, max_bytes, 3600)

    assert submit("k1", "h1", "t1", now=1.0) == (SubmitOutcome.CREATED, "t1")
    assert submit("k1", "h1", "t2", now=2.0) == (SubmitOutcome.REPLAYED, "t1")
    assert submit("k1", "h2", "t3", now=3.0) == (SubmitOutcome.CONFLICT, "t1")
    assert store.get_task("t2") is None and store.get_task("t3") is None
    # Past the TTL the key is forgotten and names a new request.
    assert submit("k1", "h2", "t4", now=1.0 + 3601) == (SubmitOutcome.CREATED, "t4")
    # A full queue stores neither the task nor the key: the retry may succeed later.
    assert submit("k2", "h1", "t5", now=5000.0, max_bytes=250) == (SubmitOutcome.QUEUE_FULL, "")
    assert store.get_task("t5") is None
    assert submit("k2", "h1", "t6", now=5001.0) == (SubmitOutcome.CREATED, "t6")
    assert store.prune_idempotency_keys(before=3000.0) == 0  # both keys are newer
    assert store.prune_idempotency_keys(before=6000.0) == 2
    assert submit("k2", "h9", "t7", now=6001.0) == (SubmitOutcome.CREATED, "t7")


def test_tags_filter_pages_and_go_with_their_task(store: Store) -> None:
    """Tasks carrying every asked tag, newest first, page by page; deleting a task drops its tags."""
    for n in range(7):
        tags = {"project": "vqe" if n % 2 == 0 else "qaoa", "run": str(n % 3)}
        store.create_task(f"t{n}", NewTask("c", 10, tags=tags), now=float(n))
    found, cursor = store.list_tasks(None, None, 2, [("project", "vqe")])
    assert [t.id for t in found] == ["t6", "t4"] and found[0].tags == {"project": "vqe", "run": "0"}
    found, cursor = store.list_tasks(None, cursor, 2, [("project", "vqe")])
    assert [t.id for t in found] == ["t2", "t0"] and cursor is None
    found, _ = store.list_tasks(None, None, 10, [("project", "vqe"), ("run", "0")])
    assert [t.id for t in found] == ["t6", "t0"]
    assert store.list_tasks(TaskStatus.COMPLETED, None, 10, [("project", "vqe")])[0] == []
    assert store.list_tasks(None, None, 10, [("project", "none")])[0] == []
    task = store.get_task("t3")
    assert task is not None and task.tags == {"project": "qaoa", "run": "0"}
    store.cancel("t6", 100.0)
    assert store.prune_finished(before=200.0, limit=10) == 1
    assert [t.id for t in store.list_tasks(None, None, 10, [("run", "0")])[0]] == ["t3", "t0"]


@pytest.mark.backend_only("sqlite")
def test_a_tag_filter_walks_an_index(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "tags.db"))
    store.initialize()
    query = store.sql.LIST_TASKS.replace("{filters}", tag_filter(store.sql, 0))
    conn = sqlite3.connect(store.path)
    plan = " | ".join(
        row[3]
        for row in conn.execute(
            "EXPLAIN QUERY PLAN " + query, {"before": 10, "limit": 5, "tag_key_0": "k", "tag_value_0": "v"}
        )
    )
    conn.close()
    store.close()
    assert "SCAN task_tags" not in plan and "USING PRIMARY KEY" in plan, plan


def test_a_big_batch_keeps_the_counters_right_through_claims_and_cancel(store: Store) -> None:
    circuit = "OPENQASM 3.0;"  # 13 bytes
    tasks = [(f"b{i}", NewTask(circuit, 10, tags={"n": str(i)} if i % 1000 == 0 else None)) for i in range(2500)]
    assert store.create_batch("batch", tasks, None, now=1.0, max_queued_bytes=2500 * 13) == (
        SubmitOutcome.CREATED,
        "batch",
    )
    assert store.create_batch("more", [("x", NewTask(circuit, 10))], None, 1.0, max_queued_bytes=2500 * 13)[0] is (
        SubmitOutcome.QUEUE_FULL
    )
    assert store.queued_bytes() == 2500 * 13 and store.queue_depth() == 2500
    claimed = store.claim("w", now=2.0, lease_seconds=30, limit=32)
    assert [c.task_id for c in claimed] == [f"b{i}" for i in range(32)]  # in request order
    store.cancel_batch("batch", now=3.0)
    stats = store.stats(live_within=1e9, now=3.0)
    assert stats.counts[TaskStatus.CANCELLED] == 2500 - 32 and stats.counts[TaskStatus.PENDING] == 32
    assert stats.finished_total[TaskStatus.CANCELLED] == 2500 - 32 and stats.submitted_total == 2500
    assert store.queued_bytes() == 32 * 13 and store.queue_depth() == 0
    assert store.list_tasks(None, None, 10, [("n", "2000")])[0][0].id == "b2000"
    assert store.finish("w", [Finish(c, TaskStatus.CANCELLED, 4.0) for c in claimed]) == [True] * 32
    assert store.queued_bytes() == 0 and store.stats(1e9, 4.0).counts[TaskStatus.CANCELLED] == 2500
