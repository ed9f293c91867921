"""Fair share costs nothing at claim time: claims on a queue of 100 keys x 1,000 tasks against the
same on one key's 100,000, through the store as the workers call it."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from harness.databases import FreshDatabase
from shared.backends import open_store
from shared.config import Settings
from shared.examples import BELL_QASM3
from shared.ids import new_id
from shared.models import NewTask, RunDetails
from shared.store import Store

QUEUED = 100_000
KEYS = 100
CLAIMS = 2000


def _fill(store: Store, owners: int) -> None:
    """QUEUED waiting tasks, spread evenly over `owners` keys, each key's as batches of 1,000."""
    for owner in range(owners):
        for _ in range(QUEUED // owners // 1000):
            tasks = [(new_id(), NewTask(BELL_QASM3, 1024, owner=f"key{owner}")) for _ in range(1000)]
            store.create_batch(new_id(), tasks, None, time.time())


def _claim_rate(store: Store) -> float:
    """Claims per second, each recorded as completed, as a worker with one task at a time makes them."""
    started = time.perf_counter()
    for _ in range(CLAIMS):
        claim = store.claim_next("bench", time.time(), 30)
        assert claim is not None
        store.complete(claim, "bench", {"00": 1024}, time.time(), RunDetails())
    return CLAIMS / (time.perf_counter() - started)


def measure(backend: str) -> dict[str, Any]:
    found: dict[str, Any] = {"queued": QUEUED, "keys": KEYS}
    for name, owners in (("one_key", 1), ("many_keys", KEYS)):
        database = FreshDatabase(Path(tempfile.mkdtemp(prefix="qtq-fair-")), backend)
        try:
            store = open_store(Settings(_env_file=None, **database.settings()), pool_size=2)  # type: ignore[arg-type]
            store.initialize()
            _fill(store, owners)
            database.execute("ANALYZE tasks")
            found[name] = _claim_rate(store)
            store.close()
        finally:
            database.drop()
    return found


def ratio(measured: dict[str, Any]) -> float:
    return float(measured["many_keys"] / measured["one_key"])
