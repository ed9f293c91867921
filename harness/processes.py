"""Real API and worker processes on a fresh database, for the tests and the benchmark.

Each API gets its listening socket from here (bound to a free port, handed over with `--fd`),
so no other process can take the port between choosing it and serving on it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx

from harness.databases import FreshDatabase

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")

# Every client here talks plain HTTP to 127.0.0.1, yet httpx builds each new client (and each
# module-level httpx.get) an SSL context of its own: certifi's CA bundle read and parsed, about
# 25 ms of CPU. They share this one instead. (An API's start-up was polled every 20 ms at that
# price, and a test that opened a client per request spent 25 s of CPU on a thousand of them.)
SHARED_TLS = ssl.create_default_context()


def http_client(**options: Any) -> httpx.Client:
    """An httpx.Client with these options, built without an SSL context of its own."""
    return httpx.Client(verify=SHARED_TLS, **options)


def http_request(method: str, url: str, **options: Any) -> httpx.Response:
    """httpx.request without building an SSL context of its own."""
    return httpx.request(method, url, verify=SHARED_TLS, **options)


def http_get(url: str, **options: Any) -> httpx.Response:
    return http_request("GET", url, **options)


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


def stat_fields(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name: [0] the state, [1] the parent's pid,
    [11] and [12] user and system CPU ticks. FileNotFoundError once the process is gone."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process, from /proc."""
    fields = stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A port that was free a moment ago: only for programs that take a port number, not a socket
    (scripts/run.sh). Everything this harness starts itself gets a socket from `listening_socket`."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening_socket(port: int = 0) -> socket.socket:
    """A TCP socket listening on 127.0.0.1 (on `port`, or a free one), ready to hand to a child."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restarted API takes its old port back
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


class Service:
    """One real process, its output captured to a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> None:
        self.name, self.args, self.env, self.cwd, self.log_path = name, args, env, cwd, log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._terminated = False
        self.url = ""  # an API's base URL

    def start(self, listener: socket.socket | None = None) -> Service:
        """Start the process; an API gets `listener` as its socket (the caller's copy is closed)."""
        log = open(self.log_path, "ab")
        self._terminated = False
        args, fds = self.args, tuple[int, ...]()
        if listener is not None:
            args, fds = [*args, "--fd", str(listener.fileno())], (listener.fileno(),)
        try:
            self.process = subprocess.Popen(
                args,
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=fds,
            )
        finally:
            log.close()
            if listener is not None:
                # The API holds the only copy now: when it dies, clients are refused at once
                # instead of waiting in a backlog nobody accepts from.
                listener.close()
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

    def terminate(self) -> None:
        """SIGTERM, once (a second one would make uvicorn skip its graceful shutdown)."""
        assert self.process is not None
        if self.process.poll() is None and not self._terminated:
            self.process.send_signal(signal.SIGTERM)
            self._terminated = True

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def descendants(self) -> list[int]:
        """Its children, theirs, and so on: a worker's simulation processes are children of its
        simulation fork server (see worker.sandbox)."""
        found, queue = [], _children(self.pid)
        while queue:
            pid = queue.pop(0)
            found.append(pid)
            queue.extend(_children(pid))
        return found


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:  # gone meanwhile
        return []


class Cluster:
    """An API server and any number of workers sharing one fresh database (`database`, or a new
    one of the session's backend)."""

    def __init__(
        self, workdir: Path, backend: str | None = None, database: FreshDatabase | None = None, **settings: Any
    ) -> None:
        self.workdir = workdir
        self.database = database or FreshDatabase(workdir, backend)
        self._listener: socket.socket | None = listening_socket()
        self.port = self._listener.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.settings = {
            **self.database.settings(),
            "API_HOST": "127.0.0.1",
            "WORKER_MAX_MEMORY_MB": "4096",
            # New tasks wake idle workers at once (wake-up socket, NOTIFY); the poll is only the
            # safety net, and at the 5 ms default a dozen idle workers would eat a core here.
            "POLL_INTERVAL_SECONDS": "0.25",
            "SHUTDOWN_GRACE_SECONDS": "5",
            **{k: str(v) for k, v in settings.items()},
        }
        self.api: Service | None = None
        self.workers: list[Service] = []
        self.extra_apis: list[Service] = []
        # Every process this cluster has started, in order: an API started again after a kill
        # replaces `api`, but the log of its first life is still checked.
        self.started: list[Service] = []
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
        service = Service(name, [sys.executable, "-m", module], self.env(**overrides), self.workdir, log_path)
        self.started.append(service)
        return service

    def start_api(self, **overrides: Any) -> Service:
        """Start the cluster's API on its port (again, after a kill), and wait until it answers."""
        listener, self._listener = self._listener or listening_socket(self.port), None
        self.api = self._launch_api(listener, **overrides)
        return self.api

    def start_extra_api(self, **overrides: Any) -> Service:
        """Another API process on the same database, at the returned service's `url`."""
        api = self._launch_api(listening_socket(), **overrides)
        self.extra_apis.append(api)
        return api

    def _launch_api(self, listener: socket.socket, **overrides: Any) -> Service:
        port = listener.getsockname()[1]
        api = self._service("api", "api_server.main", API_PORT=port, **overrides)
        api.url = f"http://127.0.0.1:{port}"
        api.start(listener)
        wait_for(lambda: self._healthy(api), 60, f"the API on port {port} to answer /health")
        return api

    @staticmethod
    def _healthy(api: Service) -> bool:
        if api.process is not None and api.process.poll() is not None:
            raise AssertionError(f"the API exited with {api.process.returncode}:\n{api.log()}")
        try:
            return http_get(f"{api.url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def start_worker(self, wait: bool = True, **overrides: Any) -> Service:
        worker = self._service("worker", "worker.main", **overrides).start()
        self.workers.append(worker)
        if wait:
            worker.wait_log("started on database")
        return worker

    def start_workers(self, count: int, **overrides: Any) -> list[Service]:
        """Start `count` workers at once (their imports overlap) and wait until all have started."""
        workers = [self.start_worker(wait=False, **overrides) for _ in range(count)]
        for worker in workers:
            worker.wait_log("started on database")
        return workers

    def client(self, timeout: float = 30) -> httpx.Client:
        return http_client(base_url=self.base_url, timeout=timeout)

    def rows(self) -> dict[str, dict[str, Any]]:
        """Every task's bookkeeping, read straight from the database."""
        return self.database.rows()

    def all_services(self) -> list[Service]:
        return ([self.api] if self.api else []) + self.extra_apis + self.workers

    def stop(self) -> dict[str, int]:
        """SIGTERM every process still running, all at once; returns exit codes by log file name."""
        running = [service for service in self.all_services() if service.process is not None]
        for service in running:
            service.terminate()
        return {service.log_path.name: service.stop() for service in running}

    def drop(self) -> None:
        """Stop everything and remove the database (a PostgreSQL database is dropped)."""
        self.stop()
        if self._listener is not None:
            self._listener.close()
        self.database.drop()


@contextlib.contextmanager
def running_cluster(workdir: Path, workers: int = 1, **settings: Any) -> Iterator[Cluster]:
    """An API and `workers` workers for a whole module or session; on the way out every process
    must exit 0 on SIGTERM and no log may hold a traceback."""
    cluster = Cluster(workdir, **settings)
    try:
        cluster.start_api()
        cluster.start_workers(workers)
        yield cluster
    finally:
        codes = cluster.stop()
        cluster.drop()
    assert all(code == 0 for code in codes.values()), f"a service exited badly: {codes}"
    for service in cluster.started:
        assert_clean_logs(service)


def assert_clean_logs(service: Service) -> None:
    """No traceback or Rust panic ever reaches a log: every failure is a one-line message."""
    text = service.log()
    assert "Traceback" not in text, f"{service.name} logged a traceback:\n{text[-4000:]}"
    assert "panicked at" not in text, f"{service.name} logged a parser panic:\n{text[-4000:]}"
