"""See and steer the queue: list with pagination, cancel in every state, health and metrics."""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.services import (
    BELL_QASM3,
    Cluster,
    assert_clean_logs,
    http_client,
    http_get,
    slow_circuit,
    submit,
    wait_done,
    wait_for,
)

ALL_STATES = {"submitted", "pending", "completed", "failed", "cancelled"}


def _status(client: httpx.Client, task_id: str) -> str:
    return client.get(f"/tasks/{task_id}").json()["status"]


# ----- listing ------------------------------------------------------------------------------


def test_pages_cover_new_tasks_newest_first_without_gaps_or_duplicates(client: httpx.Client) -> None:
    ours = [submit(client, BELL_QASM3, shots=10) for _ in range(7)]
    seen: list[str] = []
    cursor = None
    arrived_meanwhile = []
    while not set(ours) <= set(seen):
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/tasks", params=params).json()
        seen += [item["task_id"] for item in page["items"]]
        for item in page["items"]:
            # The last page reaches older tasks of the session's other tests: tagged ones, batched ones.
            assert set(item) <= {
                "task_id",
                "status",
                "shots",
                "created_at",
                "started_at",
                "finished_at",
                "num_qubits",
                "tags",
                "batch_id",
            }
            assert None not in item.values()
        # New tasks arriving mid-way must not shift the pages.
        arrived_meanwhile.append(submit(client, BELL_QASM3, shots=10))
        cursor = page.get("next_cursor")
        assert cursor is not None or set(ours) <= set(seen)
    assert len(seen) == len(set(seen)), "a task appeared on two pages"
    assert seen[: len(ours)] == list(reversed(ours)), "newest first, with no gaps"
    assert not set(arrived_meanwhile) & set(seen)


def test_filter_by_state_and_limits(client: httpx.Client) -> None:
    done = wait_done(client, submit(client, BELL_QASM3, shots=10))
    assert done["status"] == "completed"
    page = client.get("/tasks", params={"status": "completed", "limit": 500}).json()
    assert page["items"] and all(item["status"] == "completed" for item in page["items"])
    assert done["task_id"] in [item["task_id"] for item in page["items"]] or "next_cursor" in page
    listed = next(i for i in page["items"] if i["task_id"] == done["task_id"])
    assert listed["num_qubits"] == 2
    for bad in ({"limit": 0}, {"limit": 501}, {"status": "running"}, {"cursor": "not a cursor"}):
        response = client.get("/tasks", params=bad)
        assert response.status_code == 422, bad
        field = next(iter(bad))
        assert response.json()["detail"][0]["msg"].startswith(f"{field}:")


def test_completed_task_shows_circuit_facts(client: httpx.Client) -> None:
    task = wait_done(client, submit(client, BELL_QASM3, shots=10))
    assert task["num_qubits"] == 2 and task["depth"] == 3
    assert task["duration_ms"] > 0
    circuit = client.get(f"/tasks/{task['task_id']}/circuit").json()
    assert circuit["circuit"] == BELL_QASM3
    assert "┤ H ├" in circuit["diagram"]
    assert client.get("/tasks/nope/circuit").status_code == 404


# ----- cancel ------------------------------------------------------------------------------


def test_cancel_of_finished_tasks_is_409_with_their_state(client: httpx.Client) -> None:
    completed = wait_done(client, submit(client, BELL_QASM3, shots=10))
    failed = wait_done(client, submit(client, "OPENQASM 3.0;\nqubit[1] q;\nfoo q[0];\n"))
    for task in (completed, failed):
        response = client.post(f"/tasks/{task['task_id']}/cancel")
        assert response.status_code == 409
        assert response.json() == {"detail": f"Task is already {task['status']}", "status": task["status"]}
    assert client.post("/tasks/no-such-task/cancel").json() == {"detail": "Task not found"}


@pytest.mark.local
def test_cancel_submitted_is_immediate_and_final(make_cluster) -> None:
    cluster: Cluster = make_cluster()
    cluster.start_api()  # no worker: the task stays submitted
    with cluster.client() as client:
        task_id = submit(client, BELL_QASM3)
        response = client.post(f"/tasks/{task_id}/cancel")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "cancelled" and "finished_at" in body and "attempts" not in body
        again = client.post(f"/tasks/{task_id}/cancel")
        assert again.status_code == 409 and again.json()["status"] == "cancelled"
        cluster.start_worker()
        after = submit(client, BELL_QASM3, shots=10)
        assert wait_done(client, after)["status"] == "completed"
        assert _status(client, task_id) == "cancelled", "a worker ran a cancelled task"
    assert cluster.rows()[task_id]["attempts"] == 0


@pytest.mark.local
def test_cancel_pending_stops_the_simulation_within_seconds(make_cluster) -> None:
    cluster: Cluster = make_cluster()
    cluster.start_api()
    worker = cluster.start_worker()
    with cluster.client() as client:
        task_id = submit(client, slow_circuit(200_000), shots=10)  # ~15 s if left alone
        wait_for(lambda: _status(client, task_id) == "pending", 30, "the task to start")
        asked = time.monotonic()
        response = client.post(f"/tasks/{task_id}/cancel")
        assert response.status_code == 202
        assert response.json()["status"] == "pending" and response.json()["cancel_requested"] is True
        wait_for(lambda: _status(client, task_id) == "cancelled", 10, "the worker to cancel the task")
        took = time.monotonic() - asked
        task = client.get(f"/tasks/{task_id}").json()
        assert "result" not in task and "cancel_requested" not in task
        assert wait_done(client, submit(client, BELL_QASM3, shots=10))["status"] == "completed"
    assert took < 5, f"cancel took {took:.1f} s"
    assert f"task {task_id} cancelled" in worker.log()
    assert_clean_logs(worker)


# ----- health and metrics ------------------------------------------------------------------


def test_health_shows_queue_depth_and_live_workers(client: httpx.Client, session_cluster: Cluster | None) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert set(body["queue"]) == ALL_STATES
    assert body["workers"], "no live worker"
    for worker in body["workers"]:
        assert {"worker_id", "host", "pid", "started_at", "last_heartbeat"} <= set(worker)
        assert None not in worker.values(), "an idle worker's task_id must be left out, not null"
    if session_cluster is not None:
        assert sorted(w["pid"] for w in body["workers"]) == sorted(w.pid for w in session_cluster.workers)


@pytest.mark.local
def test_health_is_503_when_the_database_cannot_be_read(make_cluster) -> None:
    cluster: Cluster = make_cluster()
    cluster.start_api()
    with cluster.client() as client:
        assert client.get("/health").status_code == 200
        with cluster.database.unreachable():
            response = client.get("/health")
            assert response.status_code == 503
            assert response.json() == {"detail": "Database is unavailable"}
            assert client.get("/metrics").status_code == 503
        wait_for(lambda: client.get("/health").status_code == 200, 15, "the API to reach the database again")
    assert cluster.api is not None
    assert_clean_logs(cluster.api)


def _scrape(base_url: str) -> dict[tuple[str, tuple], float]:
    text = http_get(f"{base_url}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.local
def test_metrics_move_as_tasks_finish_and_agree_across_api_processes(make_cluster) -> None:
    cluster: Cluster = make_cluster()
    cluster.start_api()
    second_api = cluster.start_extra_api()
    cluster.start_worker()
    second = second_api.url
    before = _scrape(cluster.base_url)
    with cluster.client() as client, http_client(base_url=second, timeout=30) as other:
        ids = [submit(client, BELL_QASM3, shots=10), submit(other, BELL_QASM3, shots=10)]
        ids.append(submit(other, "OPENQASM 3.0;\nqubit[1] q;\nfoo q[0];\n"))
        for task_id in ids:
            wait_done(client, task_id)
    wait_for(lambda: _scrape(cluster.base_url) == _scrape(second), 10, "both APIs to report the same numbers")
    after = _scrape(second)

    def moved(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after[key] - before.get(key, 0.0)

    assert moved("qtq_tasks_submitted_total") == 3
    assert moved("qtq_tasks_finished_total", outcome="completed") == 2
    assert moved("qtq_tasks_finished_total", outcome="failed") == 1
    assert moved("qtq_tasks", state="completed") == 2
    assert moved("qtq_task_queue_wait_seconds_count") == 3
    assert moved("qtq_task_run_seconds_count") == 3
    assert moved("qtq_task_run_seconds_bucket", le="+Inf") == 3
    assert after[("qtq_workers_live", ())] == 1
    assert after[("qtq_tasks", (("state", "pending"),))] == 0
