"""Keeps the lease of the task in hand from a thread of its own, so a long simulation keeps its task."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from shared.errors import StoreError
from shared.models import Claim, LeaseStatus
from shared.store import Store

logger = logging.getLogger(__name__)


@dataclass
class HeldLease:
    """One claim while this worker holds it, and what the renewals learned about it."""

    claim: Claim
    lost: threading.Event = field(default_factory=threading.Event)
    cancel_requested: threading.Event = field(default_factory=threading.Event)

    def should_stop(self) -> bool:
        return self.lost.is_set() or self.cancel_requested.is_set()


class LeaseKeeper:
    """One long-lived thread per worker (not one per task: starting a thread costs ~1 ms).

    It beats at least once a second, so that a cancel request reaches the simulation within
    about a second, and at least three times per lease, so the lease never lapses.
    """

    def __init__(self, store: Store, worker_id: str, lease_seconds: float) -> None:
        self.store, self.worker_id, self.lease_seconds = store, worker_id, lease_seconds
        self.interval = min(lease_seconds / 3, 1.0)
        self._held: HeldLease | None = None
        # Held while a renewal runs: drop() waits for it, so no renewal of a task reaches the
        # database after the worker has written its result (it would find the row finished and
        # report the lease as lost to another worker, which never happened).
        self._renewing = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def hold(self, claim: Claim) -> HeldLease:
        self._held = HeldLease(claim)
        return self._held

    def drop(self) -> None:
        """Stop renewing; once this returns, no renewal of the dropped task is under way."""
        with self._renewing:
            self._held = None

    def task_id(self) -> str | None:
        """The task this worker holds right now, if any."""
        held = self._held
        return held.claim.task_id if held is not None else None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._renewing:
                held = self._held
                if held is not None and not held.lost.is_set():
                    self._renew(held)

    def _renew(self, held: HeldLease) -> None:
        task_id = held.claim.task_id
        try:
            lease = self.store.renew_lease(held.claim, self.worker_id, time.time() + self.lease_seconds)
        except StoreError as error:
            logger.warning("task %s lease renewal failed, will retry: %s", task_id, error)
            return
        if lease is LeaseStatus.LOST:
            logger.warning("task %s lease lost: another worker owns it now", task_id)
            held.lost.set()
        elif lease is LeaseStatus.CANCEL_REQUESTED and not held.cancel_requested.is_set():
            logger.info("task %s cancel requested: stopping its simulation", task_id)
            held.cancel_requested.set()
