"""Many tasks at once with two workers: every task completes and is claimed exactly once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.services import BELL_QASM3, Cluster, http_client, wait_done


def submit_many(base_url: str, count: int, threads: int = 8, **fields: object) -> list[str]:
    """Submit `count` Bell tasks from several client threads at once; returns the acknowledged ids."""
    local = threading.local()
    clients: list[httpx.Client] = []

    def one(_: int) -> str:
        if not hasattr(local, "client"):  # one keep-alive connection per thread
            local.client = http_client(base_url=base_url, timeout=60)
            clients.append(local.client)
        response = local.client.post("/tasks", json={"circuit": BELL_QASM3, "shots": 100, **fields})
        assert response.status_code == 202, response.text
        return response.json()["task_id"]

    try:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(one, range(count)))
    finally:
        for client in clients:
            client.close()


def wait_all(client: httpx.Client, task_ids: list[str], timeout: float) -> dict[str, dict]:
    """wait_done for each task in turn, all within `timeout`; returns the final views."""
    deadline = time.monotonic() + timeout
    done: dict[str, dict] = {}
    for task_id in task_ids:
        left = deadline - time.monotonic()
        assert left > 0, f"{len(task_ids) - len(done)} of {len(task_ids)} tasks unfinished after {timeout} s"
        done[task_id] = wait_done(client, task_id, left)
    return done


def test_300_concurrent_tasks_two_workers_each_claimed_once(
    base_url: str, client: httpx.Client, session_cluster: Cluster | None
) -> None:
    task_ids = submit_many(base_url, 300)
    assert len(set(task_ids)) == 300
    views = wait_all(client, task_ids, timeout=180)
    for view in views.values():
        assert view["status"] == "completed", view
        assert sum(view["result"].values()) == 100
        assert view["attempts"] == 1, view  # attempts counts claims
    if session_cluster is not None:
        rows = session_cluster.rows()
        claimed = [rows[t] for t in task_ids]
        assert all(r["attempts"] == 1 and r["worker_id"] for r in claimed)
        assert len({r["worker_id"] for r in claimed}) == 2, "both workers should have taken tasks"
