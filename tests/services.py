"""Start the real API and worker processes for tests: free port, fresh database, explicit env."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx

from shared.examples import BELL_QASM3 as BELL_QASM3  # re-exported for the tests
from tests.databases import FreshDatabase

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")

TERMINAL = {"completed", "failed", "cancelled"}


BELL_QASM2 = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[2];
creg c[2];
h q[0];
cx q[0],q[1];
measure q -> c;
"""


def slow_circuit(iterations: int) -> str:
    """A one-qubit circuit whose run time grows with `iterations` (about 70 us each on our machine)."""
    return (
        'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[1] q;\nbit[1] c;\n'
        f"for int i in [1:{iterations}] {{ x q[0]; }}\nc[0] = measure q[0];\n"
    )


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.02) -> T:
    """Poll until predicate() is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_done(client: httpx.Client, task_id: str, timeout: float = 60) -> dict[str, Any]:
    """Poll GET /tasks/{id} until the task is completed, failed or cancelled."""

    def finished() -> dict[str, Any] | None:
        body = client.get(f"/tasks/{task_id}").json()
        return body if body["status"] in TERMINAL else None

    return wait_for(finished, timeout, f"task {task_id} to finish")


def submit(client: httpx.Client, circuit: str, **fields: Any) -> str:
    response = client.post("/tasks", json={"circuit": circuit, **fields})
    assert response.status_code == 202, response.text
    return response.json()["task_id"]


class Service:
    """One real process, its output captured to a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> None:
        self.name, self.args, self.env, self.cwd, self.log_path = name, args, env, cwd, log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.args, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_log(self, text: str, timeout: float = 60) -> None:
        wait_for(lambda: text in self.log() or self._died(), timeout, f"{self.name} to log {text!r}")
        assert text in self.log(), f"{self.name} exited before logging {text!r}:\n{self.log()}"

    def _died(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def send(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL the whole process group (the worker and its simulation child)."""
        assert self.process is not None
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        return [int(p) for p in path.read_text().split()] if path.exists() else []


class Cluster:
    """An API server and any number of workers sharing one fresh SQLite file."""

    def __init__(self, workdir: Path, backend: str | None = None, **settings: Any) -> None:
        self.workdir = workdir
        self.database = FreshDatabase(workdir, backend)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.settings = {
            **self.database.settings(),
            "API_HOST": "127.0.0.1",
            "API_PORT": str(self.port),
            "WORKER_MAX_MEMORY_MB": "4096",
            "SHUTDOWN_GRACE_SECONDS": "5",
            **{k: str(v) for k, v in settings.items()},
        }
        self.api: Service | None = None
        self.workers: list[Service] = []
        self.extra_apis: list[Service] = []
        self._count = 0

    def env(self, **overrides: Any) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in self.settings}
        env.update(self.settings)
        env.update({k: str(v) for k, v in overrides.items()})
        env["PYTHONPATH"] = str(ROOT)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _service(self, name: str, module: str, **overrides: Any) -> Service:
        self._count += 1
        log_path = self.workdir / f"{self._count:02d}-{name}.log"
        # cwd is the work dir, so a developer's own .env in the checkout never leaks into a test.
        return Service(name, [sys.executable, "-m", module], self.env(**overrides), self.workdir, log_path)

    def start_api(self, **overrides: Any) -> Service:
        """Start the cluster's API on its port (again, after a kill), and wait until it answers."""
        self.api = self._launch_api(self.port, **overrides)
        return self.api

    def start_extra_api(self, port: int, **overrides: Any) -> Service:
        """Another API process on the same database, at http://127.0.0.1:{port}."""
        api = self._launch_api(port, **overrides)
        self.extra_apis.append(api)
        return api

    def _launch_api(self, port: int, **overrides: Any) -> Service:
        api = self._service("api", "api_server.main", API_PORT=port, **overrides).start()
        wait_for(lambda: self._healthy(api, port), 60, f"the API on port {port} to answer /health")
        return api

    @staticmethod
    def _healthy(api: Service, port: int) -> bool:
        if api.process is not None and api.process.poll() is not None:
            raise AssertionError(f"the API exited with {api.process.returncode}:\n{api.log()}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def start_worker(self, wait: bool = True, **overrides: Any) -> Service:
        worker = self._service("worker", "worker.main", **overrides).start()
        self.workers.append(worker)
        if wait:
            worker.wait_log("started on database")
        return worker

    def client(self, timeout: float = 30) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=timeout)

    def rows(self) -> dict[str, dict[str, Any]]:
        """Every task's bookkeeping, read straight from the database."""
        return self.database.rows()

    def all_services(self) -> list[Service]:
        return ([self.api] if self.api else []) + self.extra_apis + self.workers

    def stop(self) -> dict[str, int]:
        """SIGTERM every process still running; returns exit codes by log file name."""
        codes = {}
        for service in self.all_services():
            if service.process is not None:
                codes[service.log_path.name] = service.stop()
        return codes

    def drop(self) -> None:
        """Stop everything and remove the database (a PostgreSQL database is dropped)."""
        self.stop()
        self.database.drop()


@contextlib.contextmanager
def running_cluster(workdir: Path, workers: int = 1, **settings: Any) -> Iterator[Cluster]:
    """An API and `workers` workers for a whole module or session; on the way out every process
    must exit 0 on SIGTERM and no log may hold a traceback."""
    cluster = Cluster(workdir, **settings)
    try:
        cluster.start_api()
        for _ in range(workers):
            cluster.start_worker()
        yield cluster
    finally:
        codes = cluster.stop()
        cluster.drop()
    assert all(code == 0 for code in codes.values()), f"a service exited badly: {codes}"
    for service in cluster.all_services():
        assert_clean_logs(service)


def assert_clean_logs(service: Service) -> None:
    """No traceback or Rust panic ever reaches a log: every failure is a one-line message."""
    text = service.log()
    assert "Traceback" not in text, f"{service.name} logged a traceback:\n{text[-4000:]}"
    assert "panicked at" not in text, f"{service.name} logged a parser panic:\n{text[-4000:]}"
