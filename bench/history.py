"""Cost does not grow with history: submit and claim rates on a table holding many finished tasks,
against the same on an empty table, through the store as the API and the workers call it."""

from __future__ import annotations

import os
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
from shared.store import DATABASE_CLOCK, Store

HISTORY = int(os.environ.get("BENCH_HISTORY", "1000000"))
OPERATIONS = 2000
FILL_CHUNK = 100_000

# Finished tasks written straight into the table, as if served over months (both dialects agree).
FILL = """
INSERT INTO tasks (id, status, circuit, shots, created_at, started_at, finished_at, result, attempts)
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count})
SELECT 'history-{chunk}-' || i, 'completed', 'OPENQASM 3.0;', 1024, i, i, i + 1, '{{"00": 1024}}', 1 FROM n
"""


def _fill(database: FreshDatabase, count: int) -> None:
    for chunk, start in enumerate(range(0, count, FILL_CHUNK)):
        database.execute(FILL.format(count=min(FILL_CHUNK, count - start), chunk=chunk))
    # A table that grew over months has statistics (PostgreSQL's autovacuum, SQLite's optimize);
    # one filled a second ago has none yet, and the planner would guess.
    database.execute("ANALYZE tasks")


def _rates(store: Store) -> dict[str, float]:
    """Submissions per second, then claims (each recorded as completed) per second."""
    task = NewTask(BELL_QASM3, 1024)
    started = time.perf_counter()
    for _ in range(OPERATIONS):
        store.create_task(new_id(), task, time.time())  # ids as the API makes them
    submit = OPERATIONS / (time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(OPERATIONS):
        claim = store.claim_next("bench", DATABASE_CLOCK, 30)
        assert claim is not None
        store.complete(claim, "bench", {"00": 1024}, time.time(), RunDetails())
    claim_rate = OPERATIONS / (time.perf_counter() - started)
    return {"submit_per_s": submit, "claim_per_s": claim_rate}


def measure(backend: str, history: int = HISTORY) -> dict[str, Any]:
    """The rates on an empty table and on one with `history` finished tasks."""
    found: dict[str, Any] = {"history": history}
    for name, rows in (("empty", 0), ("full", history)):
        database = FreshDatabase(Path(tempfile.mkdtemp(prefix="qtq-history-")), backend)
        try:
            store = open_store(Settings(_env_file=None, **database.settings()), pool_size=2)  # type: ignore[arg-type]
            store.initialize()
            started = time.perf_counter()
            _fill(database, rows)
            found[f"fill_seconds_{name}"] = time.perf_counter() - started
            found[name] = _rates(store)
            store.close()
        finally:
            database.drop()
    return found


def ratios(measured: dict[str, Any]) -> dict[str, float]:
    full, empty = measured["full"], measured["empty"]
    return {key: full[key] / empty[key] for key in ("submit_per_s", "claim_per_s")}
