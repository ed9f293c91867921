"""This service end to end over real HTTP, as a user sees it: submit, then long-poll until done."""

from __future__ import annotations

import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.services import Cluster

CLIENT_THREADS = 8
LONG_POLL_SECONDS = 60


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def wait_done(client: httpx.Client, task_id: str) -> dict[str, Any]:
    while True:
        body = client.get(f"/tasks/{task_id}", params={"wait": LONG_POLL_SECONDS}).json()
        if body["status"] in ("completed", "failed", "cancelled"):
            return body


class ServiceBench:
    """One API and N workers on a fresh database of the given backend."""

    def __init__(self, backend: str, workers: int, **settings: Any) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="qtq-bench-"))
        self.cluster = Cluster(self.workdir, backend=backend, **settings)
        self.workers = workers

    def __enter__(self) -> "ServiceBench":
        self.cluster.start_api()
        for _ in range(self.workers):
            self.cluster.start_worker()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cluster.drop()

    def throughput(self, circuit: str, count: int, shots: int = 1024) -> float:
        """Tasks per second from the first submission to the last completion, as clients see it."""
        base = self.cluster.base_url

        def one_client(share: int) -> None:
            with httpx.Client(base_url=base, timeout=120) as client:
                ids = []
                for _ in range(share):
                    response = client.post("/tasks", json={"circuit": circuit, "shots": shots})
                    assert response.status_code == 202, response.text
                    ids.append(response.json()["task_id"])
                for task_id in ids:
                    assert wait_done(client, task_id)["status"] == "completed"

        started = time.perf_counter()
        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            list(pool.map(one_client, [count // CLIENT_THREADS] * CLIENT_THREADS))
        return (count // CLIENT_THREADS) * CLIENT_THREADS / (time.perf_counter() - started)

    def latency(self, circuit: str, count: int, shots: int = 1024) -> list[float]:
        """Submit -> completed in seconds for single tasks sent to idle workers, one at a time."""
        samples = []
        with httpx.Client(base_url=self.cluster.base_url, timeout=120) as client:
            for _ in range(5):  # warm connections and caches
                wait_done(client, client.post("/tasks", json={"circuit": circuit, "shots": shots}).json()["task_id"])
            for _ in range(count):
                time.sleep(0.02)  # let the workers go idle again
                started = time.perf_counter()
                task_id = client.post("/tasks", json={"circuit": circuit, "shots": shots}).json()["task_id"]
                body = wait_done(client, task_id)
                samples.append(time.perf_counter() - started)
                assert body["status"] == "completed", body
        return samples

    def split(self, circuit: str, repeats: int) -> dict[str, float]:
        """Queue wait, parse, transpile and simulate of a heavy circuit as the service records them."""
        rows: list[dict[str, float]] = []
        with httpx.Client(base_url=self.cluster.base_url, timeout=600) as client:
            for _ in range(repeats):
                started = time.perf_counter()
                task_id = client.post("/tasks", json={"circuit": circuit, "shots": 1024, "seed": 1}).json()["task_id"]
                body = wait_done(client, task_id)
                total = (time.perf_counter() - started) * 1000
                assert body["status"] == "completed", body
                created, begun = _epoch(body["created_at"]), _epoch(body["started_at"])
                rows.append(
                    {
                        "queue_wait_ms": (begun - created) * 1000,
                        "parse_ms": body["parse_ms"],
                        "transpile_ms": body["transpile_ms"],
                        "simulate_ms": body["duration_ms"],
                        "total_ms": total,
                    }
                )
        return {key: statistics.median(r[key] for r in rows) for key in rows[0]}


def _epoch(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def backends() -> list[str]:
    """SQLite always; PostgreSQL too when TEST_DATABASE_URL names a server."""
    import os

    return ["sqlite", "postgres"] if os.environ.get("TEST_DATABASE_URL") else ["sqlite"]

