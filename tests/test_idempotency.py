"""Idempotency-Key on POST /tasks: a retried submission never runs a circuit twice."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.services import BELL_QASM3, Cluster, http_client
from tests.services import app_client as in_process_app


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[TestClient]:
    with in_process_app(tmp_path) as client:
        yield client


@pytest.mark.database_independent
def test_a_retry_with_the_same_key_and_body_answers_the_first_task(app_client: TestClient) -> None:
    body = {"circuit": BELL_QASM3, "shots": 100, "seed": 3}
    first = app_client.post("/tasks", json=body, headers={"Idempotency-Key": "retry-me-1"})
    assert first.status_code == 202 and "idempotent-replayed" not in first.headers
    again = app_client.post(
        "/tasks", json={"seed": 3, "shots": 100, "circuit": BELL_QASM3}, headers={"Idempotency-Key": "retry-me-1"}
    )
    assert again.status_code == 202
    assert again.json() == first.json() and again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert len(app_client.get("/tasks").json()["items"]) == 1


@pytest.mark.database_independent
def test_the_same_key_with_another_body_is_a_409(app_client: TestClient) -> None:
    assert app_client.post("/tasks", json={"circuit": BELL_QASM3}, headers={"Idempotency-Key": "k"}).status_code == 202
    other = app_client.post("/tasks", json={"circuit": BELL_QASM3, "shots": 7}, headers={"Idempotency-Key": "k"})
    assert other.status_code == 409
    assert other.json() == {"detail": 'Idempotency-Key "k" was already used with a different request'}
    assert len(app_client.get("/tasks").json()["items"]) == 1


@pytest.mark.database_independent
@pytest.mark.parametrize("key", [b"", b"x" * 256, "café".encode("latin-1"), b"tab\there"])
def test_a_malformed_key_is_a_422_naming_the_header(app_client: TestClient, key: bytes) -> None:
    response = app_client.post("/tasks", json={"circuit": BELL_QASM3}, headers={"Idempotency-Key": key})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["msg"].startswith("Idempotency-Key: ")


@pytest.mark.local
def test_twenty_concurrent_requests_with_one_key_create_one_task(
    base_url: str, session_cluster: Cluster | None
) -> None:
    assert session_cluster is not None
    marker = uuid.uuid4().hex
    circuit = BELL_QASM3 + f"// {marker}\n"
    key = f"concurrent-{marker}"

    def post(_: int) -> httpx.Response:
        with http_client(base_url=base_url, timeout=30) as client:
            return client.post("/tasks", json={"circuit": circuit, "shots": 10}, headers={"Idempotency-Key": key})

    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(post, range(20)))
    assert all(r.status_code == 202 for r in responses), [r.text for r in responses if r.status_code != 202]
    assert len({r.json()["task_id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 19
    rows = [row for row in session_cluster.rows().values() if marker in row["circuit"]]
    assert len(rows) == 1


@pytest.mark.local
def test_the_readme_retry_command_is_safe_to_repeat(base_url: str, tmp_path: Path) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    (command,) = [block for block in readme.split("```bash\n") if "Idempotency-Key: " in block.split("```")[0]]
    command = command.split("```")[0].replace("http://127.0.0.1:8000", base_url)
    command = command.replace("6f1c9e52-experiment-42", f"readme-{uuid.uuid4().hex}")
    (tmp_path / "request.json").write_text(json.dumps({"circuit": BELL_QASM3, "shots": 10}))
    answers = [
        subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    ]
    assert json.loads(answers[0])["status"] == "submitted"
    assert answers[0] == answers[1]
