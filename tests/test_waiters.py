"""The long-poll watcher: a worker's result rings the API's doorbell (SQLite: a socket beside the
database; PostgreSQL: LISTEN/NOTIFY), so a waiting request is answered at once, not at the
watcher's next look; a doorbell lost with its connection is opened again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from api_server import waiters
from api_server.waiters import CompletionWatcher
from harness.databases import FreshDatabase
from shared.models import Finish, NewTask, TaskStatus
from shared.store import DATABASE_CLOCK, Store
from tests.services import open_store

# Were a ring not sent or not heard, the watcher would look again only after an hour.
NEVER = 3600.0


async def until(condition: Callable[[], object], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


Scenario = Callable[[CompletionWatcher, Store, Store], Awaitable[None]]


def run_watched(database: FreshDatabase, scenario: Scenario, prepare: Callable[[Store], None] | None = None) -> None:
    """Run scenario(watcher, api store, worker store) with a started watcher, then stop and close
    all; `prepare` gets the API's store before the watcher starts."""
    api, worker = open_store(database), open_store(database)
    api.initialize()
    if prepare is not None:
        prepare(api)

    async def watched() -> None:
        watcher = CompletionWatcher(api)
        watcher.start()
        try:
            await scenario(watcher, api, worker)
        finally:
            await watcher.stop()

    try:
        asyncio.run(watched())
    finally:
        api.close()
        worker.close()


async def finish_awaited(watcher: CompletionWatcher, api: Store, worker: Store, task_id: str) -> None:
    """Submit task_id, wait on it, let the 'worker' store complete it: the waiter must be answered."""
    api.create_task(task_id, NewTask("c", 10, None), time.time())
    claim = next(c for c in worker.claim("w1", DATABASE_CLOCK, 30, 10) if c.task_id == task_id)
    with watcher.waiter(task_id) as finished:
        await until(lambda: not watcher._new_waiter, "the watcher to look once and wait on its bell")
        done = Finish(claim, TaskStatus.COMPLETED, time.time(), time.time(), result={"0": 10})
        assert await asyncio.get_running_loop().run_in_executor(None, worker.finish, "w1", [done]) == [True]
        await asyncio.wait_for(finished, timeout=10)


def test_a_result_written_by_a_worker_wakes_the_waiting_request(fresh_database: FreshDatabase, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(waiters, "SAFETY_CHECK_SECONDS", NEVER)

    async def scenario(watcher: CompletionWatcher, api: Store, worker: Store) -> None:
        assert watcher._bell is not None
        await finish_awaited(watcher, api, worker, "t1")

    run_watched(fresh_database, scenario)


@pytest.mark.backend_only("postgres")
def test_a_doorbell_lost_with_its_connection_is_opened_again(fresh_database: FreshDatabase, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(waiters, "SAFETY_CHECK_SECONDS", NEVER)
    monkeypatch.setattr(waiters, "BELL_RETRY_SECONDS", 0.2)

    import psycopg

    mine = "FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN qtq_finished'"

    def listeners() -> int:
        with psycopg.connect(fresh_database.url, autocommit=True) as conn:
            return len(conn.execute(f"SELECT pid {mine}").fetchall())

    async def scenario(watcher: CompletionWatcher, api: Store, worker: Store) -> None:
        first = watcher._bell
        assert first is not None and listeners() == 1
        fresh_database.execute(f"SELECT pg_terminate_backend(pid) {mine}")
        with watcher.waiter("nothing") as _:  # someone waits, so the watcher runs
            await until(lambda: watcher._bell is not first and watcher._bell is not None, "the bell to be opened again")
        assert listeners() == 1
        await finish_awaited(watcher, api, worker, "t2")  # answered by the new bell's ring alone

    run_watched(fresh_database, scenario)


def test_a_doorbell_that_cannot_be_opened_at_start_is_tried_again(fresh_database: FreshDatabase, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The store cannot open its doorbell when the API starts (the database is away for a moment):
    long-polls poll meanwhile, and the doorbell is opened later, as after one lost in service."""
    monkeypatch.setattr(waiters, "SAFETY_CHECK_SECONDS", NEVER)
    monkeypatch.setattr(waiters, "BELL_RETRY_SECONDS", 0.2)

    def away_at_first(api: Store) -> None:
        opened, tries = api.finished_bell, list[None]()

        def finished_bell() -> object:
            tries.append(None)
            return None if len(tries) == 1 else opened()

        monkeypatch.setattr(api, "finished_bell", finished_bell)

    async def scenario(watcher: CompletionWatcher, api: Store, worker: Store) -> None:
        assert watcher._bell is None
        await finish_awaited(watcher, api, worker, "t1")  # answered by polling
        with watcher.waiter("nothing") as _:
            await until(lambda: watcher._bell is not None, "the bell to be opened after all")
        await finish_awaited(watcher, api, worker, "t2")  # answered by the bell's ring alone

    run_watched(fresh_database, scenario, away_at_first)
