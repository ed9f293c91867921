"""Long-polls: one watcher per API process wakes every waiting request when its task finishes.

Waiters cost little while nothing finishes: the watcher asks the database a cheap "has any task
finished?", and only when the answer moves does it read, in one query, those of the awaited tasks
that are done; each waiter gets its task as read there, so its request answers without reading it
again. It asks when the store's finished-tasks doorbell rings (SQLite: a socket beside the
database; PostgreSQL: a LISTEN; rung after results, cancels and recoveries), and every
SAFETY_CHECK_SECONDS in case a ring was lost. Without a doorbell (DATABASE_POLL_ONLY, or while a
lost one cannot be opened again) it asks every millisecond after a change or a new waiter,
backing off to every 10 ms while nothing moves, so a long simulation is not slowed by the asking.

A new waiter registers before its request reads the task, so a task that finishes after that read
rings the bell after the waiter is known: with a bell, a newcomer needs no look of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.concurrency import run_in_threadpool

from shared.errors import StoreError
from shared.models import Task
from shared.store import Store
from shared.wakeup import Doorbell

logger = logging.getLogger(__name__)

FIRST_CHECK_SECONDS = 0.001
MAX_CHECK_SECONDS = 0.01
BACK_OFF = 1.25
SAFETY_CHECK_SECONDS = 0.1
BELL_RETRY_SECONDS = 5.0  # how often a lost doorbell is opened again


class ShuttingDown(Exception):
    """This API process is stopping: a long-poll answers now, with the task as it is."""


class CompletionWatcher:
    def __init__(self, store: Store) -> None:
        self.store = store
        # Set on SIGTERM or Ctrl-C (see release): long-polls answer at once rather than hold up the
        # graceful stop until SHUTDOWN_GRACE_SECONDS, where uvicorn would cut them off.
        self.stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: dict[str, list[asyncio.Future[Task]]] = {}
        self._new_waiter = False
        self._anyone_waiting = asyncio.Event()  # while nobody waits, the watcher sleeps on this
        self._rung = asyncio.Event()  # the doorbell rang since the watcher last asked
        self._bell: Doorbell | None = None
        self._bell_fd = -1
        self._bell_lost = False  # a bell was open and broke: try again every BELL_RETRY_SECONDS
        self._open_bell_at = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        bell = self.store.finished_bell()
        self._listen(bell)
        if bell is None:
            # None: this store has no doorbell (DATABASE_POLL_ONLY), or cannot open one now (the
            # database is away for a moment). Asking again every BELL_RETRY_SECONDS settles which;
            # without a bell the store answers None at once, at no cost.
            self._bell_lost = True
            self._open_bell_at = self._loop.time() + BELL_RETRY_SECONDS
        self._task = self._loop.create_task(self._watch(), name="completion-watcher")

    def _listen(self, bell: Doorbell | None) -> None:
        self._bell = bell
        if bell is not None:
            self._bell_fd = bell.fileno()  # kept: a lost connection no longer says its descriptor
            asyncio.get_running_loop().add_reader(self._bell_fd, self._ring)

    def _ring(self) -> None:
        assert self._bell is not None
        try:
            self._bell.drain()
        except Exception as error:  # noqa: BLE001 - any failure: the bell is gone, poll instead
            logger.warning("long-poll doorbell lost, polling until it is back: %s", " ".join(str(error).split()))
            self._close_bell()
            self._bell_lost = True
            self._open_bell_at = asyncio.get_running_loop().time() + BELL_RETRY_SECONDS
            self._anyone_waiting.set()  # an idle watcher wakes to time the bell's reopening
        self._rung.set()  # rung, or lost: either way, look now

    def _close_bell(self) -> None:
        if self._bell is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._bell_fd)
            with contextlib.suppress(Exception):
                self._bell.close()
            self._bell = None

    async def _reopen_bell(self) -> None:
        """After a lost bell, open it again (in a thread: it may connect to the database)."""
        loop = asyncio.get_running_loop()
        if self._bell is not None or not self._bell_lost or loop.time() < self._open_bell_at:
            return
        self._open_bell_at = loop.time() + BELL_RETRY_SECONDS
        bell = await run_in_threadpool(self.store.finished_bell)
        if bell is not None:
            logger.info("long-poll doorbell back")
            self._bell_lost = False
            self._listen(bell)
            self._new_waiter = True  # rings were missed meanwhile: look at once

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._close_bell()

    def release(self) -> None:
        """The process is stopping: every long-poll answers now, and any new one at once (with
        ShuttingDown). Safe to call from a signal handler."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._release)

    def _release(self) -> None:
        self.stopping = True
        for futures in self._waiting.values():
            for future in futures:
                if not future.done():
                    future.set_exception(ShuttingDown())

    @contextlib.contextmanager
    def waiter(self, task_id: str):  # type: ignore[no-untyped-def]
        """Register before reading the task, so a finish between the read and the wait is not
        missed; the future's result is the finished task (ShuttingDown once the process stops)."""
        future: asyncio.Future[Task] = asyncio.get_running_loop().create_future()
        if self.stopping:
            future.set_exception(ShuttingDown())
        self._waiting.setdefault(task_id, []).append(future)
        if self._bell is None:
            self._new_waiter = True  # polling: look soon, whatever the version says
        self._anyone_waiting.set()
        try:
            yield future
        finally:
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: a ShuttingDown nobody awaited is not an error
            futures = self._waiting.get(task_id, [])
            if future in futures:
                futures.remove(future)
            if not futures:
                self._waiting.pop(task_id, None)

    async def _idle(self) -> None:
        """No wake-ups until a request starts waiting, but one to open a lost doorbell again on
        time: operators read `long-poll doorbell back` in the log, whether or not anyone waits."""
        self._anyone_waiting.clear()
        timeout = None
        if self._bell is None and self._bell_lost:
            timeout = max(0.0, self._open_bell_at - asyncio.get_running_loop().time())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._anyone_waiting.wait(), timeout)

    async def _watch(self) -> None:
        seen: float | None = None
        pause = FIRST_CHECK_SECONDS
        while True:
            if not self._waiting:
                await self._idle()
            await self._reopen_bell()
            if not self._waiting:
                continue  # woken only to open a lost doorbell again
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
            for task in done:
                for future in self._waiting.pop(task.id, []):
                    if not future.done():
                        future.set_result(task)
