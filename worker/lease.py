"""Keeps the lease of the task in hand from a thread of its own, so a long simulation keeps its task."""

from __future__ import annotations

import logging
import threading
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
    """One long-lived thread per worker (not one per task: starting a thread costs ~1 ms) that
    renews every claim the worker holds, in one transaction.

    It beats at least once a second, so that a cancel request reaches the simulation within
    about a second, and at least three times per lease, so the lease never lapses.
    """

    def __init__(self, store: Store, worker_id: str, lease_seconds: float) -> None:
        self.store, self.worker_id, self.lease_seconds = store, worker_id, lease_seconds
        self.interval = min(lease_seconds / 3, 1.0)
        self._held: dict[str, HeldLease] = {}
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
        return self.hold_all([claim])[0]

    def hold_all(self, claims: list[Claim]) -> list[HeldLease]:
        held = [HeldLease(claim) for claim in claims]
        with self._renewing:
            self._held.update((lease.claim.task_id, lease) for lease in held)
        return held

    def drop(self, task_ids: list[str] | None = None) -> None:
        """Stop renewing these tasks (all by default); once this returns, no renewal of them is under way."""
        with self._renewing:
            if task_ids is None:
                self._held = {}
            for task_id in task_ids or []:
                self._held.pop(task_id, None)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._renewing:
                held = [lease for lease in self._held.values() if not lease.lost.is_set()]
                if held:
                    self._renew(held)

    def _renew(self, held: list[HeldLease]) -> None:
        try:
            # Until lease_seconds from now by the database's clock, which every host shares.
            statuses = self.store.renew_leases([lease.claim for lease in held], self.worker_id, self.lease_seconds)
        except StoreError as error:
            logger.warning("lease renewal of %d tasks failed, will retry: %s", len(held), error)
            return
        for lease, status in zip(held, statuses, strict=True):
            task_id = lease.claim.task_id
            if status is LeaseStatus.LOST:
                logger.warning("task %s lease lost: another worker owns it now", task_id)
                lease.lost.set()
            elif status is LeaseStatus.CANCEL_REQUESTED and not lease.cancel_requested.is_set():
                logger.info("task %s cancel requested: stopping its simulation", task_id)
                lease.cancel_requested.set()
