"""Helpers for the tests: circuits, submitting and waiting; the processes come from `harness`."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from api_server.app import create_app
from harness.databases import FreshDatabase
from harness.processes import (  # noqa: F401 - re-exported for the tests
    ROOT,
    Cluster,
    Service,
    assert_clean_logs,
    cpu_seconds,
    free_port,
    http_client,
    http_get,
    http_request,
    running_cluster,
    stat_fields,
    wait_for,
)
from shared.config import Settings
from shared.examples import BELL_QASM3 as BELL_QASM3  # re-exported for the tests
from shared.sqlite_store import SqliteStore
from shared.store import Store

TERMINAL = {"completed", "failed", "cancelled"}


def open_store(database: FreshDatabase, pool_size: int = 2) -> Store:
    """A store on this fresh database of the session's backend (not initialized)."""
    if database.backend == "postgres":
        from shared.postgres_store import PostgresStore

        return PostgresStore(database.url, pool_size=pool_size)
    return SqliteStore(str(database.path))


BELL_QASM2 = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[2];
creg c[2];
h q[0];
cx q[0],q[1];
measure q -> c;
"""


def slow_circuit(iterations: int) -> str:
    """A one-qubit circuit whose run time grows with `iterations`: about 70 us each on our machine
    when it is quiet, and up to 290 us on a slow day (the tests' durations are sized for the former)."""
    return (
        'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[1] q;\nbit[1] c;\n'
        f"for int i in [1:{iterations}] {{ x q[0]; }}\nc[0] = measure q[0];\n"
    )


# A long-poll's own limit here: every client of the suite waits longer than this for an answer.
LONG_POLL_SECONDS = 5.0


def wait_done(client: httpx.Client, task_id: str, timeout: float = 60) -> dict[str, Any]:
    """Long-poll GET /tasks/{id}?wait= until the task is completed, failed or cancelled (a poll
    every 20 ms cost the API and the test a millisecond or two of CPU each, for the whole wait)."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        body: dict[str, Any] = client.get(f"/tasks/{task_id}", params={"wait": min(left, LONG_POLL_SECONDS)}).json()
        if body["status"] in TERMINAL:
            return body
    raise AssertionError(f"timed out after {timeout} s waiting for task {task_id} to finish")


def simulation_cpu_seconds(worker: Service) -> float:
    """User + system CPU seconds used so far by the worker's descendants (its simulation process)."""
    total = 0.0
    for pid in worker.descendants():
        with contextlib.suppress(OSError):  # gone meanwhile
            total += cpu_seconds(pid)
    return total


def wait_simulating(worker: Service, since: float, timeout: float = 30) -> None:
    """Wait until the worker's simulation process has used 0.1 s of CPU more than `since` (its
    simulation_cpu_seconds before a slow task was sent): the task runs, it is not only claimed.
    A claimed task the worker has not sent to its simulation yet is handed back by a SIGTERM."""
    wait_for(
        lambda: simulation_cpu_seconds(worker) - since >= 0.1,
        timeout,
        f"{worker.name}'s simulation process to start the task",
    )


def submit(client: httpx.Client, circuit: str, **fields: Any) -> str:
    response = client.post("/tasks", json={"circuit": circuit, **fields})
    assert response.status_code == 202, response.text
    return response.json()["task_id"]


def app_client(workdir: Path, **settings: Any) -> TestClient:
    """The app in-process on a SQLite file of its own in `workdir` (no worker, no socket), with
    these settings and nothing from the environment's .env; use it as a context manager."""
    values = {"database_name": str(workdir / "tasks.db"), **settings}
    return TestClient(create_app(Settings(_env_file=None, **values)), base_url="http://127.0.0.1:8000")


def keys_cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m api_server.keys ...` on the cluster's database, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "api_server.keys", *args],
        env=cluster.env(),
        cwd=cluster.workdir,
        capture_output=True,
        text=True,
        timeout=60,
    )


def new_key(cluster: Cluster, name: str, *options: str) -> str:
    """A new key (its token) made with `python -m api_server.keys create NAME [options]`."""
    made = keys_cli(cluster, "create", name, *options)
    assert made.returncode == 0, made.stderr
    assert "shown only this once" in made.stderr
    # An API process trusts for up to a second that the service it saw open still is (auth.OpenMode).
    for api in cluster.all_services():
        if api.url and api.process is not None and api.process.poll() is None:
            wait_for(needs_a_key(api.url), 5, f"{api.url} to need a key")
    return made.stdout.strip()


def needs_a_key(url: str) -> Callable[[], bool]:
    """Whether the API at url refuses a request without a key, as a condition for wait_for."""
    return lambda: http_get(f"{url}/tasks").status_code == 401


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends on this connection until it closes it."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)
