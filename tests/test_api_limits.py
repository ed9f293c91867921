"""In-process: the limits the API enforces before anything is queued."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shared.examples import BELL_QASM3
from tests.services import app_client

pytestmark = pytest.mark.database_independent

BASE = "http://127.0.0.1:8000"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with app_client(tmp_path) as client:
        yield client


def test_a_full_queue_refuses_with_503_and_stores_nothing(tmp_path: Path) -> None:
    size = len(BELL_QASM3.encode())
    with app_client(tmp_path, max_queued_bytes=2 * size + 10) as client:
        for _ in range(2):
            assert client.post("/tasks", json={"circuit": BELL_QASM3}).status_code == 202
        refused = client.post("/tasks", json={"circuit": BELL_QASM3})
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "5"
        assert refused.json() == {
            "detail": f"the queue already holds {2 * size} bytes of circuits waiting or running, and this "
            f"{size}-byte circuit would pass MAX_QUEUED_BYTES={2 * size + 10}; retry when some have finished"
        }
        assert len(client.get("/tasks").json()["items"]) == 2
        first = client.get("/tasks").json()["items"][0]["task_id"]
        assert client.post(f"/tasks/{first}/cancel").status_code == 200
        assert client.post("/tasks", json={"circuit": BELL_QASM3}).status_code == 202


def test_a_batch_that_would_overfill_the_queue_is_refused_whole_with_503(tmp_path: Path) -> None:
    size = len(BELL_QASM3.encode())
    with app_client(tmp_path, max_queued_bytes=3 * size) as client:
        assert client.post("/tasks", json={"circuit": BELL_QASM3}).status_code == 202
        refused = client.post("/batches", json={"tasks": [{"circuit": BELL_QASM3}] * 3})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
        detail = refused.json()["detail"]
        assert f"MAX_QUEUED_BYTES={3 * size}" in detail and detail.endswith("retry when some have finished")
        assert len(client.get("/tasks").json()["items"]) == 1, "part of the batch was stored"
        batch = client.post("/batches", json={"tasks": [{"circuit": BELL_QASM3}] * 2})
        assert batch.status_code == 202 and len(batch.json()["task_ids"]) == 2


def test_a_list_without_a_limit_gives_pages_of_50(client: TestClient) -> None:
    ids = client.post("/batches", json={"tasks": [{"circuit": BELL_QASM3}] * 51}).json()["task_ids"]
    page = client.get("/tasks").json()
    assert [item["task_id"] for item in page["items"]] == ids[:0:-1]  # newest first
    rest = client.get("/tasks", params={"cursor": page["next_cursor"]}).json()
    assert [item["task_id"] for item in rest["items"]] == ids[:1] and "next_cursor" not in rest


def test_a_five_thousand_digit_number_is_named_not_called_invalid_json(client: TestClient) -> None:
    body = '{"circuit": "qubit q;", "shots": ' + "9" * 5000 + "}"
    response = client.post("/tasks", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["msg"] == "body: a number in the JSON has more than 4300 digits; no field takes numbers that long"


def test_shot_limits_come_from_the_apps_own_settings(tmp_path: Path) -> None:
    with app_client(tmp_path, max_shots=10, default_shots=5) as client:
        refused = client.post("/tasks", json={"circuit": BELL_QASM3, "shots": 50})
        assert refused.status_code == 422
        assert refused.json()["detail"] == [
            {
                "loc": ["body", "shots"],
                "msg": "shots: Input should be less than or equal to 10",
                "type": "less_than_equal",
            }
        ]
        accepted = client.post("/tasks", json={"circuit": BELL_QASM3})
        assert accepted.status_code == 202
        assert client.get(f"/tasks/{accepted.json()['task_id']}").json()["shots"] == 5
        assert client.post("/tasks", json={"circuit": BELL_QASM3, "shots": 10}).status_code == 202


def test_the_openapi_document_states_the_apps_own_limits(tmp_path: Path) -> None:
    with app_client(tmp_path, max_shots=10, default_shots=5, max_circuit_bytes=5000) as client:
        fields = client.get("/openapi.json").json()["components"]["schemas"]["TaskCreate"]["properties"]
    assert fields["shots"]["maximum"] == 10 and fields["shots"]["default"] == 5
    assert fields["circuit"]["maxLength"] == 5000


def test_get_limits_answers_the_apps_own_settings(tmp_path: Path) -> None:
    """What a client sizes its requests by (the Qiskit backend's qubits and batch size among them)."""
    with app_client(tmp_path, max_qubits=20, max_batch_tasks=7, max_shots=10, default_shots=5) as client:
        answer = client.get("/limits")
        operation = client.get("/openapi.json").json()["paths"]["/limits"]["get"]
    assert answer.status_code == 200
    assert answer.json() == {
        "max_qubits": 20,
        "max_clbits": 1024,
        "max_shots": 10,
        "default_shots": 5,
        "max_circuit_bytes": 1_000_000,
        "max_batch_tasks": 7,
        "max_batch_bytes": 50_000_000,
        "max_sweep_points": 1000,
        "max_observables": 100,
        "max_memory_shots": 100_000,
    }
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Limits"
    }
