"""This service end to end over real HTTP, as a user sees it: submit, then long-poll until done."""

from __future__ import annotations

import contextlib
import http.client
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.circuits import numbered
from harness.processes import Cluster, cpu_seconds

CLIENT_THREADS = 8
LONG_POLL_SECONDS = 60
# uvicorn closes a keep-alive connection idle for 5 s; one idle for longer than this is reopened
# before the next request rather than found broken by it.
IDLE_RECONNECT_SECONDS = 2.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class Client:
    """A small keep-alive HTTP client: http.client costs the benchmark's 2 cores far less than httpx,
    so the figures measure the service, not the load generator."""

    def __init__(self, base_url: str, timeout: float = 120) -> None:
        parts = urlsplit(base_url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
        self.last_answer_bytes = 0  # the size of the last answer wait_done read
        self.last_used = time.monotonic()

    def post_task(self, circuit: str, shots: int, seed: int | None = None) -> str:
        return self.post({"circuit": circuit, "shots": shots, **({"seed": seed} if seed is not None else {})})

    def post(self, payload: dict[str, Any]) -> str:
        """Submit one task with any of the request's fields; returns its id."""
        return str(self.request("POST", "/tasks", payload, expect=202)["task_id"])

    def request(self, method: str, path: str, payload: Any = None, expect: int = 200) -> dict[str, Any]:
        """One request with a JSON body (if any); the JSON answer, which must have status `expect`."""
        self._reopen_if_idle()
        body = json.dumps(payload) if payload is not None else None
        self.conn.request(method, path, body, {"Content-Type": "application/json"})
        response = self.conn.getresponse()
        answer: dict[str, Any] = json.loads(response.read())
        assert response.status == expect, answer
        return answer

    def wait_done(self, task_id: str) -> dict[str, Any]:
        """Long-poll until the task is finished, as a user would."""
        while True:
            self._reopen_if_idle()
            self.conn.request("GET", f"/tasks/{task_id}?wait={LONG_POLL_SECONDS}")
            raw = self.conn.getresponse().read()
            self.last_answer_bytes = len(raw)
            self.last_used = time.monotonic()
            body = json.loads(raw)
            if body["status"] in ("completed", "failed", "cancelled"):
                return body

    def _reopen_if_idle(self) -> None:
        if time.monotonic() - self.last_used > IDLE_RECONNECT_SECONDS:
            self.conn.close()  # the next request connects again
        self.last_used = time.monotonic()

    def close(self) -> None:
        self.conn.close()


class ServiceBench:
    """One API and N workers on a fresh database of the given backend."""

    def __init__(self, backend: str, workers: int, **settings: Any) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="qtq-bench-"))
        self.cluster = Cluster(self.workdir, backend=backend, **settings)
        self.workers = workers

    def __enter__(self) -> ServiceBench:
        self.cluster.start_api()
        for _ in range(self.workers):
            self.cluster.start_worker()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cluster.drop()

    def processes(self) -> dict[str, list[int]]:
        """The service's processes by role: the API, the worker loops, their simulation processes (with
        the fork server they come from)."""
        assert self.cluster.api is not None
        workers = [w.pid for w in self.cluster.workers]
        return {
            "api": [self.cluster.api.pid],
            "worker": workers,
            "simulation": [pid for w in self.cluster.workers for pid in w.descendants()],
        }

    def throughput(self, circuit: str, count: int, shots: int = 1024) -> float:
        """Tasks per second from the first submission to the last completion, as clients see it.

        Also records in self.cpu_ms_per_task how much CPU each role of the service spent per task.
        """
        done = (count // CLIENT_THREADS) * CLIENT_THREADS
        with cpu_by_role(self, done) as cpu:
            elapsed = self.complete_all([{"circuit": numbered(circuit, i), "shots": shots} for i in range(done)])
        self.cpu_ms_per_task = cpu.result
        return done / elapsed

    def complete_all(self, payloads: list[dict[str, Any]]) -> float:
        """Seconds from the first submission to the last completion of these tasks, sent by
        CLIENT_THREADS clients that each submit their share, then long-poll each task."""
        base = self.cluster.base_url

        def one_client(share: list[dict[str, Any]]) -> None:
            client = Client(base)
            try:
                ids = [client.post(payload) for payload in share]
                for task_id in ids:
                    body = client.wait_done(task_id)
                    assert body["status"] == "completed", body
            finally:
                client.close()

        shares = [payloads[i::CLIENT_THREADS] for i in range(CLIENT_THREADS)]
        started = time.perf_counter()
        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            list(pool.map(one_client, shares))
        return time.perf_counter() - started

    def latency(self, circuit: str, count: int, shots: int = 1024) -> list[float]:
        """Submit -> completed in seconds for single tasks sent to idle workers, one at a time."""
        samples = []
        client = Client(self.cluster.base_url)
        try:
            for n in range(5):  # warm connections and caches
                client.wait_done(client.post_task(numbered(circuit, -1 - n), shots))
            for n in range(count):
                time.sleep(0.02)  # let the workers go idle again
                started = time.perf_counter()
                body = client.wait_done(client.post_task(numbered(circuit, n), shots))
                samples.append(time.perf_counter() - started)
                assert body["status"] == "completed", body
        finally:
            client.close()
        return samples

    def split(self, circuit: str, repeats: int) -> dict[str, float]:
        """Queue wait, parse, transpile and simulate of a heavy circuit as the service records them."""
        rows: list[dict[str, float]] = []
        client = Client(self.cluster.base_url, timeout=600)
        with contextlib.closing(client):
            for n in range(repeats):
                started = time.perf_counter()
                body = client.wait_done(client.post_task(numbered(circuit, n), 1024, seed=1))
                total = (time.perf_counter() - started) * 1000
                assert body["status"] == "completed", body
                created, begun = epoch_seconds(body["created_at"]), epoch_seconds(body["started_at"])
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


class CpuPerTask:
    """Filled in when the `cpu_by_role` block ends: CPU ms per task by role."""

    result: dict[str, float]


@contextlib.contextmanager
def cpu_by_role(bench: ServiceBench, tasks: int) -> Iterator[CpuPerTask]:
    """How much CPU each role of the service (and this benchmark's client) spent per task in the block."""
    roles = bench.processes()
    before = {role: sum(map(cpu_seconds, pids)) for role, pids in roles.items()}
    client_before = time.process_time()
    cpu = CpuPerTask()
    yield cpu
    cpu.result = {role: (sum(map(cpu_seconds, pids)) - before[role]) / tasks * 1000 for role, pids in roles.items()}
    cpu.result["benchmark client"] = (time.process_time() - client_before) / tasks * 1000


def epoch_seconds(stamp: str) -> float:
    """A task's timestamp (ISO 8601) as seconds since the epoch."""
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def backends() -> list[str]:
    """SQLite always; PostgreSQL too when TEST_DATABASE_URL names a server."""
    import os

    return ["sqlite", "postgres"] if os.environ.get("TEST_DATABASE_URL") else ["sqlite"]
