"""The store's side of API keys, on the session's backend: keys, quotas that hold under racing
submissions, fair-share claim order, usage, and the plans of the fair-share statements."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from harness.databases import FreshDatabase
from shared.errors import QuotaExceeded
from shared.models import ApiKey, Finish, NewTask, RunDetails, SubmitOutcome, TaskStatus
from shared.sqlite_store import SqliteStore
from shared.store import Store
from tests.services import open_store


@pytest.fixture
def store(fresh_database: FreshDatabase) -> Iterator[Store]:
    s = open_store(fresh_database, pool_size=8)
    try:
        s.initialize()
        yield s
    finally:
        s.close()


def _key(name: str, admin: bool = False, max_queued: int | None = None) -> ApiKey:
    return ApiKey(f"id-{name}", name, admin, max_queued, 1.0)


def test_keys_are_found_by_their_hash_and_a_revoked_key_stays_on_record(store: Store) -> None:
    assert store.find_key("").keys_exist is False  # open: no key at all
    assert store.create_key(_key("alice", max_queued=5), "hash-a")
    assert not store.create_key(_key("alice"), "hash-other"), "a second key took a name in use"
    found = store.find_key("hash-a")
    assert found.keys_exist and found.key is not None
    assert (found.key.name, found.key.admin, found.key.max_queued, found.key.revoked_at) == ("alice", False, 5, None)
    assert store.find_key("nope").key is None and store.find_key("nope").keys_exist
    store.touch_key(found.key.id, now=100.0, stale_after=60)
    store.touch_key(found.key.id, now=130.0, stale_after=60)  # within the minute: not written again
    assert store.list_keys()[0].last_used_at == 100.0
    assert store.revoke_key("alice", now=200.0) and not store.revoke_key("alice", now=201.0)
    after = store.find_key("hash-a")
    assert after.key is not None and after.key.revoked_at == 200.0
    assert after.keys_exist, "revoking the only key must not reopen the service"


def test_owners_see_their_own_lists_and_tasks_carry_their_owner(store: Store) -> None:
    store.create_task("a1", NewTask("c", 10, owner="alice"), now=1.0)
    store.create_task("b1", NewTask("c", 10, owner="bob"), now=2.0)
    store.create_batch("batch", [("a2", NewTask("c", 10, owner="alice"))], None, now=3.0)
    assert [t.id for t in store.list_tasks(None, None, 10, owner="alice")[0]] == ["a2", "a1"]
    assert [t.id for t in store.list_tasks(None, None, 10)[0]] == ["a2", "b1", "a1"]
    task = store.get_task("b1")
    assert task is not None and task.owner == "bob"
    batch = store.get_batch("batch")
    assert batch is not None and batch.owner == "alice"
    circuit = store.get_circuit("a1")
    assert circuit is not None and circuit[2] == "alice"


def test_a_quota_refuses_what_would_pass_it_and_counts_running_tasks(store: Store) -> None:
    for n in range(3):
        assert store.create_task(f"t{n}", NewTask("c", 10, owner="alice"), now=1.0, quota=3)
    with pytest.raises(QuotaExceeded) as refused:
        store.create_task("t3", NewTask("c", 10, owner="alice"), now=1.0, quota=3)
    assert "already has 3 tasks submitted or pending" in str(refused.value) and "max_queued=3" in str(refused.value)
    assert store.get_task("t3") is None
    # A batch that would pass it is refused whole, nothing stored.
    claims = store.claim("w", now=2.0, lease_seconds=30, limit=2)  # pending still counts
    tasks = [(f"b{n}", NewTask("c", 10, owner="alice")) for n in range(2)]
    with pytest.raises(QuotaExceeded):
        store.create_batch("batch", tasks, None, now=3.0, quota=4)
    assert store.get_batch("batch") is None and store.get_task("b0") is None
    # Finished tasks free their places; other owners have their own count.
    store.finish("w", [Finish(c, TaskStatus.COMPLETED, 4.0, result={"0": 10}) for c in claims])
    assert store.create_batch("batch", tasks, None, now=5.0, quota=3)[0] is SubmitOutcome.CREATED
    assert store.create_task("x", NewTask("c", 10, owner="bob"), now=5.0, quota=1)


def test_fifty_racing_submissions_leave_exactly_the_quota_queued(fresh_database: FreshDatabase, store: Store) -> None:
    store.create_key(_key("alice", max_queued=10), "hash-a")
    outcomes: list[str] = []
    start = threading.Barrier(10)

    def submit_five(thread: int) -> None:
        own = open_store(fresh_database)  # a connection of its own, as another API process would have
        try:
            start.wait()
            for n in range(5):
                try:
                    created = own.create_task(f"t{thread}-{n}", NewTask("c", 10, owner="alice"), now=1.0, quota=10)
                    outcomes.append("created" if created else "full")
                except QuotaExceeded:
                    outcomes.append("refused")
        finally:
            own.close()

    threads = [threading.Thread(target=submit_five, args=(t,)) for t in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("created") == 10 and outcomes.count("refused") == 40, outcomes
    assert store.queue_depth() == 10


def test_a_single_task_of_another_owner_is_claimed_after_one_of_a_big_batch(store: Store) -> None:
    flood = [(f"a{n}", NewTask("c", 10, owner="alice")) for n in range(3000)]
    store.create_batch("flood", flood, None, now=1.0)
    store.create_task("b0", NewTask("c", 10, owner="bob"), now=2.0)
    store.create_task("b1", NewTask("c", 10, owner="bob"), now=2.5)
    order = [c.task_id for c in store.claim("w", now=3.0, lease_seconds=30, limit=5)]
    # Turns: a0 and b0 share the first, a1 and b1 the second; oldest first within a turn.
    assert order == ["a0", "b0", "a1", "b1", "a2"], order
    # A newcomer joins at the first turn still waiting, not behind the thousands.
    store.create_task("c0", NewTask("c", 10, owner="carol"), now=4.0)
    assert [c.task_id for c in store.claim("w", now=5.0, lease_seconds=30, limit=3)] == ["a3", "c0", "a4"]
    # Within one owner, oldest first; an owner that runs out and comes back starts at the front.
    assert [c.task_id for c in store.claim("w", now=6.0, lease_seconds=30, limit=2)] == ["a5", "a6"]
    store.create_task("b2", NewTask("c", 10, owner="bob"), now=7.0)
    assert store.claim("w", now=8.0, lease_seconds=30, limit=2)[1].task_id == "b2"


def test_usage_counts_submissions_shots_and_simulation_time_per_owner_and_day(store: Store) -> None:
    day = 86400.0 * 20000
    store.create_task("old", NewTask("c", 100, owner="alice"), now=day - 10)
    store.create_batch("b", [(f"t{n}", NewTask("c", 100, owner="alice")) for n in range(2)], None, now=day + 1)
    store.create_task("sweep", NewTask("c", 50, options={"parameters": {"t": [0.1, 0.2, 0.3]}}, owner="bob"), day + 2)
    claims = store.claim("w", now=day + 3, lease_seconds=30, limit=10)
    by_id = {c.task_id: c for c in claims}
    details = RunDetails(duration_ms=250.0)
    store.finish(
        "w",
        [
            Finish(by_id["old"], TaskStatus.COMPLETED, day + 4, result={"0": 100}, details=details),
            Finish(by_id["t0"], TaskStatus.FAILED, day + 4, error="E: x", details=details),
            Finish(by_id["sweep"], TaskStatus.COMPLETED, day + 4, output={"results": []}, details=details),
            Finish(by_id["t1"], TaskStatus.CANCELLED, day + 4),
        ],
    )
    usage = {u.owner: u for u in store.usage(None, now=day + 5)}
    alice, bob = usage["alice"], usage["bob"]
    assert (alice.today.submitted, alice.total.submitted) == (2, 3)
    assert alice.today.shots == 100 and alice.total.shots == 100  # the failed and cancelled ran none
    assert alice.today.simulation_seconds == pytest.approx(0.5)  # completed and failed
    assert (bob.total.submitted, bob.total.shots) == (1, 150)  # 50 shots at 3 points
    assert [u.owner for u in store.usage("bob", now=day + 5)] == ["bob"]


def test_the_fair_share_statements_walk_indexes(store: Store) -> None:
    """Claim, an owner's last turn and quota count, and the first waiting turn: no scan, no sort."""
    store.create_batch("a", [(f"a{n}", NewTask("c", 1, owner=f"k{n % 100}")) for n in range(5000)], None, 1.0)
    if isinstance(store, SqliteStore):
        import sqlite3

        conn = sqlite3.connect(store.path)
        conn.execute("ANALYZE")
        plans = [
            "\n".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + query, params))
            for query, params in (
                ("SELECT max(turn) FROM tasks WHERE owner = ? AND status = 'submitted'", ("k1",)),
                ("SELECT min(turn) FROM tasks WHERE status = 'submitted'", ()),
                ("SELECT count(*) FROM tasks WHERE owner = ? AND status IN ('submitted', 'pending')", ("k1",)),
            )
        ]
        conn.close()
        plans.append(store.explain_claim())
        for plan in plans:
            assert "INDEX" in plan and "SCAN" not in plan and "TEMP B-TREE" not in plan, plan
    else:
        import psycopg

        from shared.postgres_store import PostgresStore

        assert isinstance(store, PostgresStore)
        with psycopg.connect(store.url, autocommit=True) as pg:
            pg.execute("ANALYZE tasks")
            plans = [
                str(pg.execute("EXPLAIN (FORMAT JSON) " + query, params).fetchone())
                for query, params in (
                    ("SELECT max(turn) FROM tasks WHERE owner = %s AND status = 'submitted'", ("k1",)),
                    ("SELECT min(turn) FROM tasks WHERE status = 'submitted'", ()),
                    ("SELECT count(*) FROM tasks WHERE owner = %s AND status IN ('submitted', 'pending')", ("k1",)),
                )
            ]
        plans.append(store.explain_claim())
        for plan in plans:
            assert "Index" in plan and "Seq Scan" not in plan and "'Sort'" not in plan, plan


def test_a_task_handed_back_keeps_its_turn_and_runs_next(store: Store) -> None:
    """A claim a worker gives back unstarted (a shutdown) or loses with its lease goes back to its
    place in the turns, not behind the tasks submitted since."""
    store.create_task("a0", NewTask("c", 10, owner="alice"), now=1.0)
    store.create_task("b0", NewTask("c", 10, owner="bob"), now=2.0)
    store.create_task("a1", NewTask("c", 10, owner="alice"), now=3.0)
    first = store.claim("w", now=4.0, lease_seconds=30, limit=1)[0]
    assert first.task_id == "a0"
    assert store.finish("w", [Finish(first, TaskStatus.SUBMITTED, now=5.0)]) == [True]  # handed back
    again = store.claim("w2", now=6.0, lease_seconds=30, limit=1)[0]
    assert again.task_id == "a0", "the handed-back task lost its turn"
    assert store.recover_expired(now=20.0, max_attempts=3) == []  # its lease has not run out yet
    assert store.recover_expired(now=1000.0, max_attempts=3)  # now it has: back in the queue
    assert [c.task_id for c in store.claim("w3", now=1001.0, lease_seconds=30, limit=3)] == ["a0", "b0", "a1"]
