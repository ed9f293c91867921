"""The store's queue semantics on a real SQLite file: claim order, leases, guarded writes, recovery."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from shared.errors import StoreError
from shared.models import TaskStatus
from shared.sqlite_store import SqliteStore


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    s = SqliteStore(str(tmp_path / "store.db"))
    s.initialize()
    s.initialize()  # idempotent
    return s


def test_claims_oldest_first_and_never_twice(store: SqliteStore) -> None:
    for n in range(3):
        store.create_task(f"t{n}", "c", 10, None, now=100.0 + n)
    first = store.claim_next("w1", now=200.0, lease_seconds=30)
    second = store.claim_next("w2", now=200.0, lease_seconds=30)
    assert first is not None and second is not None
    assert (first.task_id, second.task_id) == ("t0", "t1")
    assert first.attempt == 1
    task = store.get_task("t0")
    assert task is not None and task.status is TaskStatus.PENDING and task.worker_id == "w1"
    assert task.started_at == 200.0


def test_empty_queue_claims_nothing(store: SqliteStore) -> None:
    assert not store.has_work()
    assert store.claim_next("w1", now=1.0, lease_seconds=30) is None


def test_expired_lease_is_requeued_and_reclaimed_with_next_attempt(store: SqliteStore) -> None:
    store.create_task("t", "c", 10, 5, now=1.0)
    stale = store.claim_next("w1", now=10.0, lease_seconds=30)
    assert stale is not None
    assert store.recover_expired(now=39.0, max_attempts=3) == []  # not expired yet
    assert store.recover_expired(now=41.0, max_attempts=3) == [("t", TaskStatus.SUBMITTED, 1)]
    fresh = store.claim_next("w2", now=42.0, lease_seconds=30)
    assert fresh is not None and fresh.attempt == 2

    # The stale worker can no longer renew, complete or fail the task.
    assert not store.renew_lease(stale, "w1", expires_at=100.0)
    assert not store.complete(stale, "w1", {"0": 10}, now=43.0)
    assert not store.fail(stale, "w1", "X: late", now=43.0)
    assert store.complete(fresh, "w2", {"1": 10}, now=44.0)
    task = store.get_task("t")
    assert task is not None
    assert task.status is TaskStatus.COMPLETED and task.result == {"1": 10} and task.worker_id == "w2"
    assert task.attempts == 2


def test_too_many_interruptions_fail_the_task(store: SqliteStore) -> None:
    store.create_task("t", "c", 10, None, now=1.0)
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


def test_renewed_lease_is_not_recovered(store: SqliteStore) -> None:
    store.create_task("t", "c", 10, None, now=1.0)
    claim = store.claim_next("w", now=10.0, lease_seconds=5)
    assert claim is not None
    assert store.renew_lease(claim, "w", expires_at=30.0)
    assert store.recover_expired(now=20.0, max_attempts=3) == []


def test_release_returns_the_task_without_spending_an_attempt(store: SqliteStore) -> None:
    store.create_task("t", "c", 10, None, now=1.0)
    claim = store.claim_next("w", now=10.0, lease_seconds=5)
    assert claim is not None
    assert store.release(claim, "w")
    task = store.get_task("t")
    assert task is not None and task.status is TaskStatus.SUBMITTED and task.attempts == 0
    again = store.claim_next("w", now=11.0, lease_seconds=5)
    assert again is not None and again.attempt == 1


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="schema version 99"):
        SqliteStore(str(path)).initialize()
