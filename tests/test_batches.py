"""Batches: many circuits stored as one unit, watched, paged and cancelled."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.services import BELL_QASM3, app_client, http_client, slow_circuit


@pytest.fixture
def app(tmp_path: Path) -> Iterator[TestClient]:
    """The app in-process on its own SQLite file (no worker): what a batch stores and refuses."""
    with app_client(tmp_path) as client:
        yield client


def bell(shots: int) -> dict[str, Any]:
    return {"circuit": BELL_QASM3, "shots": shots}


@pytest.mark.database_independent
def test_a_batch_stores_its_tasks_in_request_order(app: TestClient) -> None:
    response = app.post("/batches", json={"tasks": [bell(n) for n in range(1, 6)], "tags": {"study": "a"}})
    assert response.status_code == 202
    body = response.json()
    assert response.headers["location"] == f"/batches/{body['batch_id']}" and body["status"] == "submitted"
    shots = [app.get(f"/tasks/{task_id}").json()["shots"] for task_id in body["task_ids"]]
    assert shots == [1, 2, 3, 4, 5]
    batch = app.get(f"/batches/{body['batch_id']}").json()
    assert batch["total"] == 5 and batch["states"] == {"submitted": 5} and batch["done"] is False
    assert batch["tags"] == {"study": "a"} and "finished_at" not in batch
    listed = app.get("/tasks", params={"batch_id": body["batch_id"]}).json()["items"]
    assert [item["task_id"] for item in listed] == body["task_ids"][::-1]
    assert {item["batch_id"] for item in listed} == {body["batch_id"]}  # the list links each to its batch
    single = app.post("/tasks", json=bell(1)).json()["task_id"]
    newest = app.get("/tasks", params={"limit": 1}).json()["items"][0]
    assert newest["task_id"] == single and "batch_id" not in newest
    assert app.get(f"/tasks/{body['task_ids'][0]}").json()["batch_id"] == body["batch_id"]


@pytest.mark.database_independent
def test_one_bad_task_refuses_the_whole_batch_naming_its_index(tmp_path: Path) -> None:
    with app_client(tmp_path, max_shots=100, default_shots=10) as client:
        bad_type = client.post(
            "/batches", json={"tasks": [bell(10), bell(10), bell(10), {"circuit": BELL_QASM3, "shots": "x"}]}
        )
        assert bad_type.status_code == 422
        assert bad_type.json()["detail"][0]["loc"] == ["body", "tasks", 3, "shots"]
        too_many = client.post("/batches", json={"tasks": [bell(10), bell(1000)]})
        assert too_many.status_code == 422
        assert too_many.json()["detail"][0] == {
            "loc": ["body", "tasks", 1, "shots"],
            "msg": "tasks.1.shots: Input should be less than or equal to 100",
            "type": "less_than_equal",
        }
        assert client.get("/tasks").json()["items"] == []


@pytest.mark.database_independent
def test_batch_limits_are_settings(tmp_path: Path) -> None:
    with app_client(tmp_path, max_batch_tasks=3, max_batch_bytes=5000) as client:
        refused = client.post("/batches", json={"tasks": [bell(1)] * 4})
        assert refused.json()["detail"][0]["msg"] == "tasks: 4 tasks are more than MAX_BATCH_TASKS=3"
        large = client.post("/batches", json={"tasks": [{"circuit": BELL_QASM3 + "//" + "x" * 6000}]})
        assert large.status_code == 413
        assert client.post("/batches", json={"tasks": []}).status_code == 422
        assert client.get("/tasks").json()["items"] == []


@pytest.mark.database_independent
def test_pages_of_a_large_batch_come_in_request_order(app: TestClient) -> None:
    body = app.post("/batches", json={"tasks": [bell(n % 50 + 1) for n in range(2500)]}).json()
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = app.get(f"/batches/{body['batch_id']}/tasks", params=params).json()
        seen += [task["task_id"] for task in page["items"]]
        cursor = page.get("next_cursor")
        if cursor is None:
            break
    assert seen == body["task_ids"]
    assert app.get("/batches/no-such-batch").status_code == 404
    assert app.get("/batches/no-such-batch/tasks").status_code == 404
    assert app.post("/batches/no-such-batch/cancel").status_code == 404


@pytest.mark.database_independent
def test_cancelling_a_waiting_batch_cancels_every_task(app: TestClient) -> None:
    body = app.post("/batches", json={"tasks": [bell(10)] * 3}).json()
    batch = app.post(f"/batches/{body['batch_id']}/cancel").json()
    assert batch["states"] == {"cancelled": 3} and batch["done"] is True and "finished_at" in batch


@pytest.mark.local
def test_a_batch_runs_and_its_long_poll_answers_when_done(client: httpx.Client) -> None:
    tasks = [bell(100), {"circuit": "OPENQASM 3.0;\nqubit[1] q;\nnot a circuit\n"}, bell(50)]
    body = client.post("/batches", json={"tasks": tasks}).json()
    batch = client.get(f"/batches/{body['batch_id']}", params={"wait": 60}).json()
    assert batch["done"] is True and batch["states"] == {"completed": 2, "failed": 1}, batch
    views = client.get(f"/batches/{body['batch_id']}/tasks").json()["items"]
    assert [sum(v["result"].values()) for v in (views[0], views[2])] == [100, 50]
    listed = client.get("/tasks", params={"batch_id": body["batch_id"]}).json()["items"]
    assert [(item["task_id"], item["batch_id"]) for item in listed] == [
        (t, body["batch_id"]) for t in body["task_ids"][::-1]
    ]
    assert views[1]["error"].startswith("QASM3ParsingError: ")


@pytest.mark.local
def test_cancelling_a_running_batch_stops_its_tasks(client: httpx.Client) -> None:
    body = client.post("/batches", json={"tasks": [{"circuit": slow_circuit(200_000), "shots": 10}] * 3}).json()
    batch = client.post(f"/batches/{body['batch_id']}/cancel").json()
    assert batch["total"] == 3
    final = client.get(f"/batches/{body['batch_id']}", params={"wait": 30}).json()
    assert final["done"] is True and final["states"] == {"cancelled": 3}


@pytest.mark.database_independent
def test_a_batch_retried_with_its_idempotency_key_is_stored_once(app: TestClient) -> None:
    body = {"tasks": [bell(10), bell(20)], "tags": {"try": "1"}}
    first = app.post("/batches", json=body, headers={"Idempotency-Key": "batch-key"})
    again = app.post("/batches", json=body, headers={"Idempotency-Key": "batch-key"})
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert len(app.get("/tasks").json()["items"]) == 2
    other = app.post("/batches", json={"tasks": [bell(30)]}, headers={"Idempotency-Key": "batch-key"})
    assert other.status_code == 409
    single = app.post("/tasks", json=bell(10), headers={"Idempotency-Key": "batch-key"})
    assert single.status_code == 409  # a key names one request, whichever endpoint


@pytest.mark.local
def test_concurrent_batches_with_one_key_store_one_batch(base_url: str) -> None:
    key = f"batch-{uuid.uuid4().hex}"

    def post(_: int) -> httpx.Response:
        with http_client(base_url=base_url, timeout=30) as client:
            return client.post("/batches", json={"tasks": [bell(5)] * 3}, headers={"Idempotency-Key": key})

    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(post, range(10)))
    assert all(r.status_code == 202 for r in responses), [r.text for r in responses]
    assert len({r.json()["batch_id"] for r in responses}) == 1
    assert len({tuple(r.json()["task_ids"]) for r in responses}) == 1
