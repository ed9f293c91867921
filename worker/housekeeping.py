"""Housekeeping any live worker does beside its simulations: presence for /health, and the sweep."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from shared.config import Settings
from shared.errors import StoreError
from shared.models import TaskStatus
from shared.store import DATABASE_CLOCK, Store

logger = logging.getLogger(__name__)

FORGET_SILENT_WORKERS_AFTER = 24 * 3600.0
PRUNE_BATCH = 1000


class Housekeeper:
    """A background thread: tells the database this worker is alive (for /health), and sweeps.

    The sweep settles tasks whose worker died (expired leases), forgets silent workers and
    prunes old finished tasks. It runs beside the simulation, so a worker busy with a long
    task still recovers the tasks of a dead one. Heartbeats and leases are stamped and judged
    by the database's clock: this host's own clock may be off.
    """

    def __init__(
        self, store: Store, settings: Settings, worker_id: str, task_in_hand: Callable[[], str | None]
    ) -> None:
        self.store = store
        self.settings = settings
        self.interval = min(settings.lease_seconds / 3, 5.0)
        self.task_in_hand = task_in_hand
        self.worker_id, self.host = worker_id, socket.gethostname()
        # Live workers (as /health counts them: heard from within a lease), in all and on this host:
        # they decide how many tasks a claim takes and how many threads a simulation gets.
        self.workers_alive = 1
        self.workers_here = 1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="housekeeper", daemon=True)

    def start(self) -> None:
        self._tick()
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._tick()

    def _tick(self) -> None:
        try:
            self.store.beat_worker(self.worker_id, self.host, os.getpid(), self.task_in_hand())
            alive, here = self.store.live_worker_count(self.settings.lease_seconds, self.host)
            self.workers_alive, self.workers_here = max(1, alive), max(1, here)
            self.sweep()
        except StoreError as error:
            logger.warning("housekeeping failed, will retry: %s", error)

    def sweep(self) -> None:
        for task_id, state, attempts in self.store.recover_expired(DATABASE_CLOCK, self.settings.max_attempts):
            if state is TaskStatus.FAILED:
                logger.warning("task %s failed: its lease expired on attempt %d, the last allowed", task_id, attempts)
            elif state is TaskStatus.CANCELLED:
                logger.info("task %s cancelled: its lease expired after a cancel request", task_id)
            else:
                logger.warning(
                    "task %s submitted: its lease expired on attempt %d, back in the queue", task_id, attempts
                )
        self.store.forget_workers(silent_for=FORGET_SILENT_WORKERS_AFTER)
        # Keys and finished tasks carry their API's or worker's time; hours and days dwarf any skew.
        now = time.time()
        self.store.prune_idempotency_keys(before=now - self.settings.idempotency_ttl_hours * 3600)
        if self.settings.task_retention_days is not None:
            pruned = self.store.prune_finished(now - self.settings.task_retention_days * 86400, PRUNE_BATCH)
            if pruned:
                logger.info("pruned %d finished tasks older than TASK_RETENTION_DAYS", pruned)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        try:
            self.store.remove_worker(self.worker_id)
        except StoreError as error:
            logger.warning("could not deregister worker %s: %s", self.worker_id, error)
