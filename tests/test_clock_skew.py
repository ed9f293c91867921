"""Worker hosts whose clocks are off: leases follow the database's clock, not theirs.

PostgreSQL only: it is the backend with several hosts, hence several clocks (an SQLite queue has
the one clock of its machine). The skewed workers run under Debian's libfaketime (0.9.10),
preloaded with the monotonic clock left alone: faked, it makes Python's timed lock waits last the
offset too, and the worker would not renew its leases in time. (Left alone, it makes time.sleep
fail with EINVAL instead, which a worker calls only when the database fails it; the simulation
process, Aer and psycopg run normally under it.)
"""

from __future__ import annotations

import glob
import time
from collections.abc import Iterator
from datetime import datetime

import psycopg
import pytest

from tests.services import Cluster, Service, assert_clean_logs, slow_circuit, wait_for
from tests.test_concurrency import wait_all

pytestmark = [pytest.mark.backend_only("postgres"), pytest.mark.crash, pytest.mark.local]

SKEW_SECONDS = 120
LEASE_SECONDS = 3.0
SWEEP_SECONDS = min(LEASE_SECONDS / 3, 5.0)  # how often a live worker looks for expired leases (Housekeeper)
TASKS = 15
MEDIUM = slow_circuit(3000)  # about 0.2 s: leases are renewed and swept while the tasks run
LONG = slow_circuit(10_000)  # most of a second


def faked_clock(offset: str) -> dict[str, str]:
    """A worker's environment for a clock shifted by offset (`+120s`)."""
    found = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
    assert found, "Debian's libfaketime is missing: `make test` installs it with apt-get"
    return {"LD_PRELOAD": found[0], "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def clock_offset(worker: Service) -> float:
    """How far the worker's clock is from ours, read from the time on its start-up log line."""
    line = next(line for line in worker.log().splitlines() if "started on database" in line)
    logged = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return logged - time.time()


@pytest.fixture(scope="module")
def skewed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, dict[str, Service]]]:
    """An API, and workers on the true clock, two minutes ahead and two minutes behind; one task a
    claim, so that each worker holds exactly the task it runs."""
    cluster = Cluster(
        tmp_path_factory.mktemp("skew"), LEASE_SECONDS=LEASE_SECONDS, SIMULATOR_THREADS=1, MAX_CLAIM_TASKS=1
    )
    try:
        cluster.start_api()
        workers = {
            "true": cluster.start_worker(wait=False),
            "ahead": cluster.start_worker(wait=False, **faked_clock(f"+{SKEW_SECONDS}s")),
            "behind": cluster.start_worker(wait=False, **faked_clock(f"-{SKEW_SECONDS}s")),
        }
        for name, worker in workers.items():
            worker.wait_log("started on database")
            expected = {"true": 0, "ahead": SKEW_SECONDS, "behind": -SKEW_SECONDS}[name]
            assert clock_offset(worker) == pytest.approx(expected, abs=10), f"the {name} worker's clock"
        yield cluster, workers
    finally:
        cluster.drop()
    for service in cluster.all_services():
        assert_clean_logs(service)


def submit_batch(cluster: Cluster, circuit: str, count: int) -> list[str]:
    with cluster.client() as client:
        response = client.post("/batches", json={"tasks": [{"circuit": circuit, "shots": 10}] * count})
        assert response.status_code == 202, response.text
        return list(response.json()["task_ids"])


def owner_pid(row: dict) -> int:
    return int(row["worker_id"].split(":")[1])


def test_workers_with_clocks_two_minutes_off_run_every_task_once(skewed) -> None:
    cluster, workers = skewed
    task_ids = submit_batch(cluster, MEDIUM, TASKS)
    with cluster.client() as client:
        views = wait_all(client, task_ids, timeout=120)
    assert all(view["status"] == "completed" for view in views.values())
    rows = cluster.rows()
    twice = [task_id for task_id in task_ids if rows[task_id]["attempts"] != 1]
    assert not twice, f"{len(twice)} of {TASKS} tasks were claimed more than once"
    ran = {owner_pid(rows[task_id]) for task_id in task_ids}
    assert {w.pid for w in workers.values()} <= ran, "every worker, skewed or not, should have run tasks"
    for worker in workers.values():
        assert "lease expired" not in worker.log() and "lease lost" not in worker.log()


def test_killed_skewed_workers_tasks_come_back_within_a_lease(skewed) -> None:
    cluster, workers = skewed
    task_ids = submit_batch(cluster, LONG, 3)

    def each_holds_one() -> dict[int, str]:
        rows = cluster.rows()
        held = {owner_pid(rows[t]): t for t in task_ids if rows[t]["status"] == "pending"}
        return held if len(held) == 3 else {}

    holding = wait_for(each_holds_one, 30, "each worker to run one long task")
    killed = {name: holding[workers[name].pid] for name in ("ahead", "behind")}
    for name in killed:
        workers[name].kill()
    died = time.monotonic()

    requeued: dict[str, float] = {}
    with psycopg.connect(cluster.database.url, autocommit=True) as conn:

        def all_back() -> bool:
            for name, task_id in killed.items():
                row = conn.execute("SELECT status, attempts FROM tasks WHERE id = %s", [task_id]).fetchone()
                if name not in requeued and row is not None and (row[0] != "pending" or row[1] > 1):
                    requeued[name] = time.monotonic() - died
            return len(requeued) == len(killed)

        wait_for(all_back, 60, "the killed workers' tasks to go back to the queue", interval=0.01)
    # The lease was renewed before the kill, so it runs out within LEASE_SECONDS of it, and the true
    # worker's next sweep finds it expired; half a second more for a busy machine.
    bound = LEASE_SECONDS + SWEEP_SECONDS + 0.5
    assert max(requeued.values()) <= bound, f"requeued after {requeued} s, not within {bound:g} s"
    with cluster.client() as client:
        views = wait_all(client, list(killed.values()), timeout=60)
    assert all(view["status"] == "completed" and view["attempts"] == 2 for view in views.values())
