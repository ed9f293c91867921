"""Scale-out: many API servers and worker hosts on one PostgreSQL; retention on both backends."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.services import (
    BELL_QASM3,
    Cluster,
    assert_clean_logs,
    http_client,
    slow_circuit,
    submit,
    wait_done,
    wait_for,
)
from tests.test_concurrency import wait_all

pytestmark = pytest.mark.local


def _other_route(url: str, how: str) -> str:
    """The same database reached another way, as a second host would: by name, or by Unix socket."""
    parts = urlsplit(url)
    user = parts.username or "postgres"
    if how == "localhost":
        return urlunsplit((parts.scheme, f"{user}@localhost:{parts.port or 5432}", parts.path, parts.query, ""))
    return urlunsplit((parts.scheme, f"{user}@", parts.path, "host=/var/run/postgresql", ""))


@pytest.mark.backend_only("postgres")
def test_two_api_hosts_two_worker_hosts_thousand_tasks_each_run_once(make_cluster) -> None:
    cluster: Cluster = make_cluster()
    url = cluster.database.url
    cluster.start_api()
    second_api = cluster.start_extra_api()
    first = cluster.start_worker(DATABASE_URL=_other_route(url, "localhost"))
    second = cluster.start_worker(DATABASE_URL=_other_route(url, "socket"), DATABASE_POLL_ONLY="true")
    bases = itertools.cycle([cluster.base_url, second_api.url])
    targets = [next(bases) for _ in range(1000)]

    def one(base: str) -> str:
        with http_client(base_url=base, timeout=60) as client:
            return submit(client, BELL_QASM3, shots=10)

    with ThreadPoolExecutor(8) as pool:
        task_ids = list(pool.map(one, targets))
    with cluster.client() as client:
        views = wait_all(client, task_ids, timeout=300)
    assert all(v["status"] == "completed" for v in views.values())
    rows = cluster.rows()
    assert all(rows[t]["attempts"] == 1 for t in task_ids), "a task was claimed twice"
    owners = {rows[t]["worker_id"].split(":")[1] for t in task_ids}
    assert owners == {str(first.pid), str(second.pid)}, "both worker hosts should have taken tasks"
    for worker in (first, second):
        assert worker.stop() == 0
        assert_clean_logs(worker)


def test_finished_tasks_past_retention_are_pruned_and_the_rest_kept(make_cluster) -> None:
    # 0.00002 days is under two seconds; LEASE_SECONDS=3 makes the worker sweep every second,
    # even while it runs a long simulation.
    cluster: Cluster = make_cluster(TASK_RETENTION_DAYS="0.00002", LEASE_SECONDS=3)
    cluster.start_api()
    worker = cluster.start_worker()
    with cluster.client() as client:
        done = wait_done(client, submit(client, BELL_QASM3, shots=10))
        assert done["status"] == "completed"
        running = submit(client, slow_circuit(150_000), shots=10)
        wait_for(lambda: client.get(f"/tasks/{running}").json()["status"] == "pending", 30, "the slow task to start")
        wait_for(lambda: client.get(f"/tasks/{done['task_id']}").status_code == 404, 30, "the old task to be pruned")
        assert client.get(f"/tasks/{running}").json()["status"] == "pending", "an unfinished task was pruned"
        client.post(f"/tasks/{running}/cancel")
    assert "pruned 1 finished tasks older than TASK_RETENTION_DAYS" in worker.log()
