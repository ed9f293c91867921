"""When PostgreSQL misbehaves under load: every connection cut, again and again, or the server
restarted. Each task that got its 202 completes exactly once, clients see only 503 with
Retry-After meanwhile, no process dies or needs a restart, no traceback reaches a log, and idle
workers still wake at once afterwards (their LISTEN is back).

PostgreSQL only: cutting connections and restarting the server are its failures (SQLite's are
the file's, in test_steering and test_hostile). The cuts touch this test's database alone, and
the restart a server of the test's own, never the one the other test files share.
"""

from __future__ import annotations

import itertools
import json
import os
import pwd
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest

from harness.databases import FreshDatabase
from tests import network
from tests.filesystems import (
    DISK_FULL,
    assert_recovers,
    fill,
    one_running_and_five_waiting,
    small_filesystem,
    submit_until_full,
)
from tests.private_postgres import PrivateServer
from tests.services import (
    BELL_QASM3,
    ROOT,
    TERMINAL,
    Cluster,
    assert_clean_logs,
    http_client,
    http_get,
    http_request,
    wait_for,
)
from tests.test_concurrency import wait_all

pytestmark = [pytest.mark.backend_only("postgres"), pytest.mark.crash, pytest.mark.local]

CUT_EVERY_SECONDS = 0.3
TASKS = 500
# The cut run is the issue's: 2,000 tasks submitted while every connection is cut, again and again.
CUT_RUN_TASKS = 2000
SHOTS = 10
# A NOTIFY wakes an idle worker in milliseconds; without one it would find a task only at its
# one-second safety poll (half a second on average).
IDLE_LATENCY_SECONDS = 0.3
BACK_WITHIN_SECONDS = 5.0
# While the server is down a request waits about a second for a connection, then asks the server
# itself (it would otherwise wait POOL_TIMEOUT_SECONDS, ten).
DOWN_ANSWER_SECONDS = 3.0
# The vanishing-host test's own limits, in its DATABASE_URL (a URL's values win over the service's
# defaults, which test_store reads off every kind of connection): a dark path is given up in
# about 3 s rather than 20, so that the test is quick.
SHORT_LIMITS = "connect_timeout=2&keepalives_idle=1&keepalives_interval=1&keepalives_count=2&tcp_user_timeout=2000"
# From the moment the first address goes dark until tasks are taken again through the second.
TAKEN_AGAIN_SECONDS = 15.0

TERMINATE = """
SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity
WHERE datname = %s AND pid <> pg_backend_pid()
"""


class Cutter:
    """Terminates every connection to one database (and no other) every CUT_EVERY_SECONDS, from a thread."""

    def __init__(self, database: FreshDatabase) -> None:
        self.database = database
        self.cuts = self.terminated = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cutter", daemon=True)

    def cut(self) -> None:
        with psycopg.connect(self.database.admin, autocommit=True) as admin:
            row = admin.execute(TERMINATE, [self.database.name]).fetchone()
        self.cuts += 1
        self.terminated += row[0] if row else 0

    def _run(self) -> None:
        while not self._stop.wait(CUT_EVERY_SECONDS):
            self.cut()

    def __enter__(self) -> Cutter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


class Load:
    """Clients submitting Bell tasks to every API, each read back once, every answer recorded."""

    def __init__(self, apis: list[str], tasks: int = TASKS, threads: int = 8) -> None:
        self.tasks = tasks
        self.acknowledged: list[str] = []
        self.answers: Counter[tuple[str, int]] = Counter()
        self.refusals: list[str] = []  # any answer but the expected one or 503 with Retry-After
        self._lock = threading.Lock()
        targets = itertools.cycle(apis)
        self._threads = [threading.Thread(target=self._submit, args=(next(targets),)) for _ in range(threads)]

    def _record(self, method: str, response: httpx.Response, ok: int) -> bool:
        with self._lock:
            self.answers[(method, response.status_code)] += 1
            if response.status_code == ok:
                return True
            if response.status_code != 503 or not response.headers.get("Retry-After"):
                self.refusals.append(f"{method} {response.status_code} {response.text[:200]}")
        return False

    def _submit(self, base_url: str) -> None:
        with http_client(base_url=base_url, timeout=30) as client:
            while len(self.acknowledged) < self.tasks:
                try:
                    response = client.post("/tasks", json={"circuit": BELL_QASM3, "shots": SHOTS})
                    if self._record("POST", response, 202):
                        task_id = response.json()["task_id"]
                        with self._lock:
                            self.acknowledged.append(task_id)
                        self._record("GET", client.get(f"/tasks/{task_id}"), 200)
                except httpx.TimeoutException as error:  # a hung API: recorded, and this client stops
                    with self._lock:
                        self.refusals.append(f"no answer within 30 s: {error!r}")
                    return

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for thread in self._threads:
            thread.join(120)


def start_services(cluster: Cluster) -> list[str]:
    """Two APIs and two workers; the APIs' URLs."""
    apis = [cluster.start_api().url, cluster.start_extra_api().url]
    cluster.start_workers(2)
    return apis


def answers(status: int, method: str, url: str, **request: Any) -> Callable[[], bool]:
    """A condition to wait for: this request gets that status."""
    return lambda: http_request(method, url, timeout=30, **request).status_code == status


def seconds_to_503(url: str) -> Callable[[], float]:
    """A condition to wait for: GET url answers 503; how long that answer took (else 0)."""

    def answered() -> float:
        started = time.monotonic()
        status = http_get(url, timeout=30).status_code
        return max(time.monotonic() - started, 1e-9) if status == 503 else 0.0

    return answered


def finished(client: httpx.Client, task_id: str) -> Callable[[], bool]:
    """A condition to wait for: the task is in a final state (a 503 on the way is just not yet)."""
    return lambda: client.get(f"/tasks/{task_id}", params={"wait": 5}).json().get("status") in TERMINAL


def wait_all_through_503(cluster: Cluster, task_ids: list[str], timeout: float = 120) -> None:
    """Until every task is finished, however many answers were 503 on the way."""
    deadline = time.monotonic() + timeout
    with cluster.client() as client:
        for task_id in task_ids:
            wait_for(finished(client, task_id), max(0.0, deadline - time.monotonic()), f"task {task_id} to finish")


def assert_each_ran_once(cluster: Cluster, load: Load) -> None:
    """What a client was promised, read straight from the database: every acknowledged task
    completed, on its first claim, with all its shots; and no answer was anything but 503."""
    assert not load.refusals, f"clients got errors other than 503 with Retry-After: {load.refusals[:5]}"
    assert load.answers[("POST", 503)] + load.answers[("GET", 503)] > 0, "the fault never reached a client"
    rows = cluster.rows()
    acknowledged = load.acknowledged
    assert all(t in rows for t in acknowledged), "an acknowledged task is not in the database"
    unfinished = [rows[t]["status"] for t in acknowledged if rows[t]["status"] != "completed"]
    assert not unfinished, f"{len(unfinished)} acknowledged tasks are not completed: {unfinished[:5]}"
    again = [t for t in acknowledged if rows[t]["attempts"] != 1]
    assert not again, f"{len(again)} of {len(acknowledged)} tasks were claimed more than once"
    assert all(sum(json.loads(rows[t]["result"]).values()) == SHOTS for t in acknowledged)


def assert_idle_workers_wake_at_once(cluster: Cluster) -> None:
    """One task at a time to idle workers: each is claimed well within the one-second safety poll.
    Right after a cut the API's first request may find its pooled connection gone and answer 503
    with Retry-After, as clients are told to expect meanwhile: that submission is sent again."""

    def taken(client: httpx.Client) -> httpx.Response | None:
        response = client.post("/tasks", json={"circuit": BELL_QASM3, "shots": SHOTS})
        return None if response.status_code == 503 and response.headers.get("Retry-After") else response

    with cluster.client() as client:
        for _ in range(3):
            response = wait_for(lambda: taken(client), 10, "the API to take a task after the cut")
            assert response is not None and response.status_code == 202, response and response.text
            task_id = response.json()["task_id"]
            wait_all(client, [task_id], timeout=30)
            row = cluster.rows()[task_id]
            waited = row["started_at"] - row["created_at"]
            assert waited < IDLE_LATENCY_SECONDS, f"an idle worker took {waited:.2f} s to start a new task"


def assert_all_served_through(cluster: Cluster) -> None:
    """No process exited; each stops cleanly on SIGTERM and logged no traceback."""
    for service in cluster.all_services():
        assert service.process is not None and service.process.poll() is None, f"{service.log_path.name} exited"
    codes = cluster.stop()
    assert all(code == 0 for code in codes.values()), codes
    for service in cluster.all_services():
        assert_clean_logs(service)


def test_every_connection_cut_every_300_ms_loses_and_repeats_nothing(make_cluster) -> None:
    cluster: Cluster = make_cluster(SIMULATOR_THREADS=1)
    apis = start_services(cluster)
    with Cutter(cluster.database) as cutter, Load(apis, tasks=CUT_RUN_TASKS) as load:
        pass  # the clients submit CUT_RUN_TASKS while every connection is cut, again and again
    with Cutter(cluster.database):
        wait_all_through_503(cluster, load.acknowledged)
    assert cutter.cuts >= 5 and cutter.terminated >= 5 * 4, "the connections were not cut often"
    assert_each_ran_once(cluster, load)
    Cutter(cluster.database).cut()  # once more with the workers idle: their LISTEN must come back
    assert_idle_workers_wake_at_once(cluster)
    assert_all_served_through(cluster)


@pytest.fixture
def server() -> Iterator[PrivateServer]:
    made = PrivateServer()
    yield made
    made.remove()


def test_server_restarted_under_load_loses_and_repeats_nothing(server, make_cluster, tmp_path) -> None:
    database = FreshDatabase(tmp_path, "postgres", admin=server.url)
    cluster: Cluster = make_cluster(SIMULATOR_THREADS=1, database=database)
    apis = start_services(cluster)
    with Load(apis) as load:
        wait_for(lambda: len(load.acknowledged) >= TASKS // 3, 60, "a third of the tasks to be acknowledged")
        server.stop()
        for api in apis:
            took = wait_for(seconds_to_503(f"{api}/health"), 30, f"the API at {api} to answer 503")
            assert took < DOWN_ANSWER_SECONDS, f"a request took {took:.1f} s to learn that the server is down"
        server.start()
        back = time.monotonic()
        submission = {"json": {"circuit": BELL_QASM3, "shots": SHOTS}}
        for api in apis:
            wait_for(answers(202, "POST", f"{api}/tasks", **submission), BACK_WITHIN_SECONDS, f"{api} to take tasks")
        with cluster.client() as client:
            response = client.post("/tasks", json={"circuit": BELL_QASM3, "shots": SHOTS})
            assert response.status_code == 202
            wait_all(client, [response.json()["task_id"]], timeout=BACK_WITHIN_SECONDS)
        served_after = time.monotonic() - back
    assert served_after < BACK_WITHIN_SECONDS, f"the service ran a task {served_after:.1f} s after the server was back"
    wait_all_through_503(cluster, load.acknowledged)
    assert_each_ran_once(cluster, load)
    assert_idle_workers_wake_at_once(cluster)
    assert_logged_as_documented(cluster)
    assert_all_served_through(cluster)


def assert_logged_as_documented(cluster: Cluster) -> None:
    """docs/operations.md tells operators which lines a server outage leaves in the logs: each API's
    long-poll doorbell lost and back (within about five seconds), each worker's retries."""
    for api in [cluster.api, *cluster.extra_apis]:
        assert api is not None
        api.wait_log("long-poll doorbell lost, polling until it is back: ", timeout=1)
        api.wait_log("long-poll doorbell back", timeout=10)
    for worker in cluster.workers:  # claiming, or writing results, when the server went
        assert re.search(r"database (unavailable|write failed), retrying in 1 s: cannot connect", worker.log())
    operations = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    for text in (
        "long-poll doorbell lost, polling until it is back",
        "long-poll doorbell back",
        "database unavailable, retrying in 1 s: …",
        "database write failed, retrying in 1 s: …",
    ):
        assert f"`{text}`" in operations, f"docs/operations.md no longer quotes {text!r}"


def test_full_disk_answers_507_loses_nothing_and_recovers_when_space_returns(server, make_cluster, tmp_path) -> None:
    """The test database's tables on a 16 MB tmpfs (a tablespace of the test's own server, the
    write-ahead log elsewhere) filled to the last byte: PostgreSQL's disk_full is a 507, as on SQLite."""
    with small_filesystem(server.dir / "disk", "16m") as disk:
        location = disk / "tablespace"
        location.mkdir(mode=0o700)
        if os.geteuid() == 0:  # the server runs as the postgres user (see PrivateServer)
            owner = pwd.getpwnam("postgres")
            os.chown(location, owner.pw_uid, owner.pw_gid)
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute(f"CREATE TABLESPACE small LOCATION '{location}'")
        database = FreshDatabase(tmp_path, "postgres", admin=server.url)
        try:
            with psycopg.connect(server.url, autocommit=True) as conn:
                conn.execute(f'ALTER DATABASE "{database.name}" SET TABLESPACE small')
            cluster: Cluster = make_cluster(database=database)
            api = cluster.start_api()
            worker = cluster.start_worker()
            with cluster.client() as client:
                acknowledged = one_running_and_five_waiting(client)
                filler = fill(disk)
                submit_until_full(client, acknowledged, 1000)  # the tables' last pages may have room for more
                # The worker cannot record the slow task's result: it says so and retries until it can.
                worker.wait_log("database write failed, retrying in 1 s: the disk holding the database is full", 30)
                padded = BELL_QASM3 + "// " + "x" * 3000 + "\n"
                batch = client.post("/batches", json={"tasks": [{"circuit": padded, "shots": SHOTS}] * 1000})
                assert batch.status_code == 507 and batch.json() == {"detail": DISK_FULL}, batch.text
                filler.unlink()
                assert_recovers(client, acknowledged)
            assert "database disk full on POST /tasks: the disk holding the database is full" in api.log()
            assert_all_served_through(cluster)
        finally:
            database.drop()
            with psycopg.connect(server.url, autocommit=True) as conn:
                conn.execute("DROP TABLESPACE IF EXISTS small")


@pytest.fixture
def two_path_server() -> Iterator[tuple[network.Host, PrivateServer]]:
    """A server of the test's own on a host of its own, reached over two links (tests.network)."""
    with network.host() as host:
        made = PrivateServer(host)
        try:
            yield host, made
        finally:
            made.remove()


def test_a_host_that_vanishes_is_given_up_and_the_next_address_serves(two_path_server, make_cluster, tmp_path) -> None:
    """DATABASE_URL names the server by two addresses (libpq tries them in turn). Under load the
    first goes dark, as in a power cut or a network split: no reset, no FIN, nothing answers. Each
    process gives up its connections through it within the URL's timeouts and goes on through the
    second: tasks are taken again within seconds, every acknowledged task completes exactly once,
    clients see only 503 meanwhile, and idle workers wake at once again (their LISTEN is back)."""
    host, server = two_path_server
    database = FreshDatabase(tmp_path, "postgres", admin=f"{server.url}?{SHORT_LIMITS}")
    cluster: Cluster = make_cluster(SIMULATOR_THREADS=1, database=database)
    apis = start_services(cluster)
    with Load(apis) as load:
        wait_for(lambda: len(load.acknowledged) >= TASKS // 3, 60, "a third of the tasks to be acknowledged")
        host.cut(host.links[0])
        dark, before = time.monotonic(), len(load.acknowledged)
        wait_for(lambda: len(load.acknowledged) >= before + 20, 60, "tasks to be taken again after the cut")
        taken_again = time.monotonic() - dark
    assert taken_again < TAKEN_AGAIN_SECONDS, (
        f"tasks were taken again only {taken_again:.1f} s after the first address went dark"
    )
    wait_all_through_503(cluster, load.acknowledged)
    assert_each_ran_once(cluster, load)
    assert_idle_workers_wake_at_once(cluster)
    assert_all_served_through(cluster)
