"""Long-polls: one watcher per API process wakes every waiting request when its task finishes.

Waiters cost little while nothing finishes: the watcher asks the database a cheap "has any task
finished?", and only when the answer moves does it ask, in one query, which of the awaited tasks
are done. It asks when the store's finished-tasks doorbell rings (SQLite: workers ring it after
writing results), and every SAFETY_CHECK_SECONDS in case a ring was lost; a backend without a
doorbell (PostgreSQL) is asked every millisecond after a change or a new waiter, backing off to
every 10 ms while nothing moves, so a long simulation is not slowed by the asking.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.concurrency import run_in_threadpool

from shared.errors import StoreError
from shared.store import Store
from shared.wakeup import WakeSocket

logger = logging.getLogger(__name__)

FIRST_CHECK_SECONDS = 0.001
MAX_CHECK_SECONDS = 0.01
BACK_OFF = 1.25
SAFETY_CHECK_SECONDS = 0.1


class CompletionWatcher:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._waiting: dict[str, list[asyncio.Future[None]]] = {}
        self._new_waiter = False
        self._anyone_waiting = asyncio.Event()  # while nobody waits, the watcher sleeps on this
        self._rung = asyncio.Event()  # the doorbell rang since the watcher last asked
        self._bell: WakeSocket | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._bell = self.store.finished_bell()
        if self._bell is not None and self._bell.sock is not None:
            loop.add_reader(self._bell.sock.fileno(), self._ring)
        self._task = loop.create_task(self._watch(), name="completion-watcher")

    def _ring(self) -> None:
        assert self._bell is not None
        self._bell.drain()
        self._rung.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._bell is not None:
            if self._bell.sock is not None:
                asyncio.get_running_loop().remove_reader(self._bell.sock.fileno())
            self._bell.close()
            self._bell = None

    @contextlib.contextmanager
    def waiter(self, task_id: str):  # type: ignore[no-untyped-def]
        """Register before reading the task, so a finish between the read and the wait is not missed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(task_id, []).append(future)
        self._new_waiter = True
        self._anyone_waiting.set()
        try:
            yield future
        finally:
            futures = self._waiting.get(task_id, [])
            if future in futures:
                futures.remove(future)
            if not futures:
                self._waiting.pop(task_id, None)

    async def _watch(self) -> None:
        seen: float | None = None
        pause = FIRST_CHECK_SECONDS
        while True:
            if not self._waiting:
                # Idle: no wake-ups at all until a request starts waiting.
                self._anyone_waiting.clear()
                await self._anyone_waiting.wait()
            if self._bell is None or self._new_waiter:
                await asyncio.sleep(FIRST_CHECK_SECONDS if self._new_waiter else pause)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._rung.wait(), SAFETY_CHECK_SECONDS)
            rung = self._rung.is_set()
            self._rung.clear()  # before asking: a ring from now on means another look
            if not self._waiting:
                continue
            try:
                version = None if rung else await run_in_threadpool(self.store.finished_version)
                if not rung and version == seen and not self._new_waiter:
                    pause = min(pause * BACK_OFF, MAX_CHECK_SECONDS)
                    continue
                self._new_waiter, pause = False, FIRST_CHECK_SECONDS
                done = await run_in_threadpool(self.store.finished_among, list(self._waiting))
                # Only now: had that read failed, the tasks finished by this version would still be
                # looked for next time, not waited on until their deadlines. (A ring skips the
                # version: it says that something finished.)
                if version is not None:
                    seen = version
            except StoreError as error:
                logger.warning("long-poll watcher cannot read the database: %s", error)
                await asyncio.sleep(0.5)
                continue
            for task_id in done:
                for future in self._waiting.pop(task_id, []):
                    if not future.done():
                        future.set_result(None)
