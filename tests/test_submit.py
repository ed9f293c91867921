"""POST /tasks in-process: what is accepted, and every way a submission is refused with a 4xx naming
the field. (Body limits over a real socket are in test_connections.py.)"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.services import BELL_QASM3, app_client, submit

pytestmark = pytest.mark.database_independent


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The app in-process on a SQLite file of its own: validation needs no worker and no socket."""
    with app_client(tmp_path_factory.mktemp("submit")) as client:
        yield client


def _no_nulls(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, dict):
        return all(_no_nulls(v) for v in value.values())
    if isinstance(value, list):
        return all(_no_nulls(v) for v in value)
    return True


def _assert_names_field(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert _no_nulls(body)
    messages = [item["msg"] for item in body["detail"]]
    assert any(m.startswith(f"{field}:") for m in messages), messages


def test_accepts_bell_and_answers_202_with_location(client: httpx.Client) -> None:
    response = client.post("/tasks", json={"circuit": BELL_QASM3, "shots": 100, "seed": 7})
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "submitted"
    assert set(body) == {"task_id", "status"}
    assert uuid.UUID(body["task_id"]).version == 7  # time-ordered (shared.ids)
    assert response.headers["location"] == f"/tasks/{body['task_id']}"
    # The row is committed before the 202: it is readable at once.
    view = client.get(response.headers["location"])
    assert view.status_code == 200
    assert view.json()["task_id"] == body["task_id"]


def test_default_shots_is_1024(client: httpx.Client) -> None:
    task_id = submit(client, BELL_QASM3)
    assert client.get(f"/tasks/{task_id}").json()["shots"] == 1024


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "circuit"),
        ({"shots": 10}, "circuit"),
        ({"circuit": ""}, "circuit"),
        ({"circuit": "   \n\t "}, "circuit"),
        ({"circuit": 42}, "circuit"),
        ({"circuit": ["OPENQASM 3.0;"]}, "circuit"),
        ({"circuit": None}, "circuit"),
        ({"circuit": "OPENQASM 3.0;\x00qubit q;"}, "circuit"),
        ({"circuit": "OPENQASM 3.0;\ud800"}, "circuit"),
        ({"circuit": BELL_QASM3, "shots": 0}, "shots"),
        ({"circuit": BELL_QASM3, "shots": -5}, "shots"),
        ({"circuit": BELL_QASM3, "shots": 100_001}, "shots"),
        ({"circuit": BELL_QASM3, "shots": 1.5}, "shots"),
        ({"circuit": BELL_QASM3, "shots": 2.5e3 + 0.5}, "shots"),
        ({"circuit": BELL_QASM3, "shots": 1e300}, "shots"),
        ({"circuit": BELL_QASM3, "shots": "10"}, "shots"),
        ({"circuit": BELL_QASM3, "shots": True}, "shots"),
        ({"circuit": BELL_QASM3, "shots": None}, "shots"),
        ({"circuit": BELL_QASM3, "seed": -1}, "seed"),
        ({"circuit": BELL_QASM3, "seed": 2**63}, "seed"),
        ({"circuit": BELL_QASM3, "seed": 10**30}, "seed"),
        ({"circuit": BELL_QASM3, "seed": "7"}, "seed"),
        ({"circuit": BELL_QASM3, "seed": 7.5}, "seed"),
        ({"circuit": BELL_QASM3, "shot": 10}, "shot"),
        ({"circuit": BELL_QASM3, "priority": "high"}, "priority"),
    ],
)
def test_bad_fields_are_422_naming_the_field(client: httpx.Client, body: dict[str, Any], field: str) -> None:
    # json.dumps escapes non-ASCII, so a lone surrogate travels as the legal JSON text "\ud800".
    raw = json.dumps(body).encode()
    _assert_names_field(client.post("/tasks", content=raw, headers={"content-type": "application/json"}), field)


def test_a_typo_in_a_field_name_does_not_run(client: httpx.Client) -> None:
    response = client.post("/tasks", json={"circuit": BELL_QASM3, "shot": 10})
    assert response.status_code == 422
    assert "unknown field" in response.json()["detail"][0]["msg"]


def test_integral_json_numbers_count_as_integers(client: httpx.Client) -> None:
    # JSON has one number type; JSON Schema calls 10.0 an integer, and so do we.
    task_id = submit(client, BELL_QASM3, shots=10.0, seed=7.0)
    view = client.get(f"/tasks/{task_id}").json()
    assert (view["shots"], view["seed"]) == (10, 7)


def test_largest_seed_is_accepted(client: httpx.Client) -> None:
    task_id = submit(client, BELL_QASM3, seed=2**63 - 1, shots=10)
    assert client.get(f"/tasks/{task_id}").json()["seed"] == 2**63 - 1


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b'{"circuit": ', b"[1, 2, 3]", b'"OPENQASM 3.0;"', b"42", b"null", b"\xff\xfe{}", b"\xc3\x28lN"],
)
def test_bodies_that_are_not_a_json_object_are_422(client: httpx.Client, raw: bytes) -> None:
    response = client.post("/tasks", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["msg"].startswith(("body:", "circuit:"))


def test_circuit_over_max_bytes_is_413(client: httpx.Client) -> None:
    circuit = BELL_QASM3 + "// " + "x" * 1_000_000 + "\n"
    response = client.post("/tasks", json={"circuit": circuit})
    assert response.status_code == 413
    assert "MAX_CIRCUIT_BYTES" in response.json()["detail"]


def test_deeply_nested_json_is_422(client: httpx.Client) -> None:
    raw = b'{"circuit": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = client.post("/tasks", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["msg"] == "body: is not valid JSON (nested too deeply)"


def test_invalid_utf8_inside_the_circuit_is_422(client: httpx.Client) -> None:
    raw = b'{"circuit": "OPENQASM 3.0;\xff\xfe qubit q;"}'
    response = client.post("/tasks", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert "not UTF-8" in response.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    "task_id", ["0b7d3c1e-52b4-4c1a-9d7e-3f1a2b4c5d6e", "not-a-uuid", "0", "%20", "a" * 300, "..%2Fetc%2Fpasswd", "a/b"]
)
def test_unknown_ids_are_404(client: httpx.Client, task_id: str) -> None:
    response = client.get(f"/tasks/{task_id}")
    assert response.status_code == 404
    assert response.json() == {"detail": "Task not found"}


def test_openapi_documents_fields_examples_and_errors(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/tasks"]["post"]
    assert {"202", "413", "422"} <= set(post["responses"])
    get = spec["paths"]["/tasks/{task_id}"]["get"]
    assert {"200", "404"} <= set(get["responses"])
    schemas = spec["components"]["schemas"]
    assert {"circuit", "shots", "seed"} <= set(schemas["TaskCreate"]["properties"])
    assert schemas["TaskCreate"]["examples"][0]["circuit"].startswith("OPENQASM 3.0;")
    assert {"result", "error", "attempts", "created_at"} <= set(schemas["TaskPublic"]["properties"])
    assert client.get("/docs").status_code == 200


def test_timestamps_are_rfc3339_utc(client: httpx.Client) -> None:
    task_id = submit(client, BELL_QASM3, shots=10)
    created = client.get(f"/tasks/{task_id}").json()["created_at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", created), created
