"""The lease keeper's timing against a store stand-in (pure logic: no database, no processes)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from shared.models import Claim, LeaseStatus
from worker.lease import LeaseKeeper

pytestmark = pytest.mark.database_independent

CLAIM = Claim(task_id="t1", circuit="", shots=1, seed=None, attempt=1, created_at=0.0)


class SlowRenewals:
    """A store whose renewal is slow, and answers LOST if the task was finished meanwhile (as the
    guarded UPDATE of a real store does: the row is no longer this worker's pending task)."""

    def __init__(self) -> None:
        self.renewing = threading.Event()
        self.finished = threading.Event()

    def renew_leases(self, claims: list[Claim], worker_id: str, lease_seconds: float) -> list[LeaseStatus]:
        self.renewing.set()
        self.finished.wait(0.3)
        return [LeaseStatus.LOST if self.finished.is_set() else LeaseStatus.HELD for _ in claims]


def test_a_result_written_during_a_renewal_is_not_reported_as_a_lost_lease(caplog: pytest.LogCaptureFixture) -> None:
    store = SlowRenewals()
    keeper = LeaseKeeper(store, "w1", lease_seconds=0.15)  # type: ignore[arg-type]
    keeper.start()
    try:
        held = keeper.hold(CLAIM)
        assert store.renewing.wait(5), "the keeper never renewed"
        with caplog.at_level(logging.WARNING, logger="worker.lease"):
            keeper.drop()  # the simulation is done; the worker now writes the result
            store.finished.set()
            keeper.stop()
    finally:
        keeper.stop()
    assert not held.lost.is_set()
    assert "lease lost" not in caplog.text


def test_a_renewal_that_finds_another_owner_stops_the_task(caplog: pytest.LogCaptureFixture) -> None:
    class TakenOver:
        def renew_leases(self, claims: list[Claim], *args: Any) -> list[LeaseStatus]:
            return [LeaseStatus.LOST for _ in claims]

    keeper = LeaseKeeper(TakenOver(), "w1", lease_seconds=0.15)  # type: ignore[arg-type]
    keeper.start()
    try:
        held = keeper.hold(CLAIM)
        assert held.lost.wait(5)
    finally:
        keeper.stop()
    assert held.should_stop()
    assert "task t1 lease lost: another worker owns it now" in caplog.text
