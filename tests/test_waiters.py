"""The long-poll watcher on SQLite: a worker's result rings the API's doorbell, so a waiting request
is answered at once, not at the watcher's next look."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from api_server import waiters
from api_server.waiters import CompletionWatcher
from shared.models import Finish, NewTask, TaskStatus
from shared.sqlite_store import SqliteStore
from shared.store import DATABASE_CLOCK
from shared.wakeup import FINISHED_TASKS, wake_folder

pytestmark = pytest.mark.backend_only("sqlite")


async def until(condition, what: str, timeout: float = 10) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.001)


def test_a_result_written_by_a_worker_wakes_the_waiting_request(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Were the doorbell not rung, or not heard, the watcher would look again only after an hour.
    monkeypatch.setattr(waiters, "SAFETY_CHECK_SECONDS", 3600.0)
    path = str(tmp_path / "tasks.db")
    api, worker = SqliteStore(path), SqliteStore(path)
    api.initialize()
    api.create_task("t1", NewTask("c", 10, None), time.time())
    claim = worker.claim("w1", DATABASE_CLOCK, 30, 1)[0]

    async def scenario() -> None:
        watcher = CompletionWatcher(api)
        watcher.start()
        try:
            assert len(list(wake_folder(path, FINISHED_TASKS).iterdir())) == 1  # the API's doorbell
            with watcher.waiter("t1") as finished:
                await until(lambda: not watcher._new_waiter, "the watcher to look once and wait on its bell")
                done = Finish(claim, TaskStatus.COMPLETED, time.time(), time.time(), result={"0": 10})
                assert await asyncio.get_running_loop().run_in_executor(None, worker.finish, "w1", [done]) == [True]
                await asyncio.wait_for(finished, timeout=10)
        finally:
            await watcher.stop()
        assert list(wake_folder(path, FINISHED_TASKS).iterdir()) == []  # its socket is gone with it

    try:
        asyncio.run(scenario())
    finally:
        api.close()
        worker.close()
