"""In-process: POST /tasks with the circuit as a text/plain or application/qasm body, shots, seed
and tags in the query; the same checks, limits and storing as the JSON body."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shared.examples import BELL_QASM3
from tests.services import app_client

pytestmark = pytest.mark.database_independent

TEXT = {"content-type": "text/plain"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with app_client(tmp_path) as client:
        yield client


def post_text(client: TestClient, body: bytes | str, query: Any = None, **headers: str) -> Any:
    content = body.encode() if isinstance(body, str) else body
    return client.post("/tasks", params=query, content=content, headers={**TEXT, **headers})


def stored(client: TestClient) -> list[str]:
    return [item["task_id"] for item in client.get("/tasks").json()["items"]]


@pytest.mark.parametrize("content_type", ["text/plain", "application/qasm", "Text/Plain; charset=UTF-8"])
def test_the_circuit_as_the_body_is_a_task_like_any_other(client: TestClient, content_type: str) -> None:
    query = [("shots", "1000"), ("seed", "7"), ("tag", "project:vqe-h2"), ("tag", "note:a:b c")]
    response = post_text(client, BELL_QASM3, query, **{"content-type": content_type})
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    assert response.json() == {"task_id": task_id, "status": "submitted"}
    assert response.headers["location"] == f"/tasks/{task_id}"
    view = client.get(f"/tasks/{task_id}").json()
    assert (view["shots"], view["seed"], view["tags"]) == (1000, 7, {"project": "vqe-h2", "note": "a:b c"})
    assert client.get(f"/tasks/{task_id}/circuit").json()["circuit"] == BELL_QASM3
    assert [item["task_id"] for item in client.get("/tasks", params={"tag": "note:a:b c"}).json()["items"]] == [task_id]


def test_without_query_parameters_the_defaults_apply(client: TestClient) -> None:
    response = post_text(client, BELL_QASM3)
    view = client.get(response.headers["location"]).json()
    assert view["shots"] == 1024 and "seed" not in view and "tags" not in view


@pytest.mark.parametrize(
    ("query", "loc", "message"),
    [
        ("shots=0", ["query", "shots"], "shots: Input should be greater than or equal to 1"),
        ("shots=1.5", ["query", "shots"], "shots: Input should be a valid integer"),
        ("shots=ten", ["query", "shots"], "shots: Input should be a valid integer"),
        ("shots=100001", ["query", "shots"], "shots: Input should be less than or equal to 100000"),
        ("seed=-1", ["query", "seed"], "seed: Input should be greater than or equal to 0"),
        (f"seed={2**63}", ["query", "seed"], "seed: Input should be less than or equal to 9223372036854775807"),
        ("shot=10", ["query", "shot"], "shot: unknown query parameter; a circuit sent as text takes shots, seed"),
        ("tags=a:b", ["query", "tags"], "tags: unknown query parameter"),
        ("tag=no-colon", ["query", "tag", 0], "tag.0: String should match pattern"),
        ("tag=a:1&tag=:x", ["query", "tag", 1], "tag.1: String should match pattern"),
        ("tag=a b:c", ["query", "tag", 0], "tag.0: String should match pattern"),
        ("tag=k:" + "v" * 257, ["query", "tag", 0], "tag.0: String should match pattern"),
        ("tag=k:a%00b", ["query", "tag", 0], "tag.0: String should match pattern"),
        ("tag=run:1&tag=run:2", ["query", "tag", 1], "tag.1: the key 'run' is given twice"),
        ("&".join(f"tag=k{n}:v" for n in range(17)), ["query", "tag"], "tag: List should have at most 16 items"),
    ],
)
def test_bad_query_parameters_are_422_naming_them(client: TestClient, query: str, loc: list, message: str) -> None:
    response = client.post(f"/tasks?{query}", content=BELL_QASM3.encode(), headers=TEXT)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == loc and error["msg"].startswith(message), error
    assert stored(client) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "body: must not be empty or only whitespace"),
        (b" \n\t", "body: must not be empty or only whitespace"),
        (b"OPENQASM 3.0;\x00qubit q;", "body: must not contain NUL characters"),
        (
            b"OPENQASM 3.0;\nqubit q; // caf\xe9\n",
            "body: is not UTF-8 text (byte 0xe9 at position 29); send the circuit as UTF-8",
        ),
        (b"\xff\xfeO\x00P\x00", "body: is not UTF-8 text (byte 0xff at position 0); send the circuit as UTF-8"),
    ],
)
def test_a_body_that_is_not_a_circuit_text_is_422(client: TestClient, body: bytes, message: str) -> None:
    response = post_text(client, body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == [
        {"loc": ["body"], "msg": message, "type": response.json()["detail"][0]["type"]}
    ]
    assert stored(client) == []


def test_a_charset_other_than_utf8_is_refused(client: TestClient) -> None:
    response = post_text(client, BELL_QASM3.encode("latin-1"), **{"content-type": "text/plain; charset=ISO-8859-1"})
    assert response.status_code == 415
    assert response.json() == {"detail": "send the circuit as UTF-8 (charset=utf-8), not charset=iso-8859-1"}


def test_a_utf8_byte_order_mark_is_kept_as_the_json_path_keeps_it(client: TestClient) -> None:
    text = post_text(client, "\ufeff" + BELL_QASM3)
    as_json = client.post("/tasks", json={"circuit": "\ufeff" + BELL_QASM3})
    circuits = [client.get(f"{r.headers['location']}/circuit").json()["circuit"] for r in (text, as_json)]
    assert circuits[0] == circuits[1] == "\ufeff" + BELL_QASM3


def test_the_limits_are_the_json_paths_limits(tmp_path: Path) -> None:
    size = len(BELL_QASM3.encode())
    settings = {"max_shots": 10, "default_shots": 5, "max_circuit_bytes": 400, "max_queued_bytes": 2 * size + 1}
    with app_client(tmp_path, **settings) as client:
        shots = post_text(client, BELL_QASM3, {"shots": 11})
        assert shots.status_code == 422
        assert shots.json()["detail"][0]["loc"] == ["query", "shots"]
        assert shots.json()["detail"][0]["msg"] == "shots: Input should be less than or equal to 10"
        circuit = post_text(client, BELL_QASM3 + "//" + "x" * 400)
        assert circuit.status_code == 413
        assert circuit.json() == {"detail": f"circuit is {size + 402} bytes; the limit is MAX_CIRCUIT_BYTES=400"}
        max_body = client.app.state.settings.max_body_bytes  # type: ignore[attr-defined]
        body = post_text(client, BELL_QASM3 + "//" + "x" * max_body)
        assert body.status_code == 413 and body.json() == {"detail": f"Request body larger than {max_body} bytes"}
        assert [post_text(client, BELL_QASM3, {"shots": 5}).status_code for _ in range(3)] == [202, 202, 503]
        assert "MAX_QUEUED_BYTES" in post_text(client, BELL_QASM3).json()["detail"]
        assert len(stored(client)) == 2


def test_the_same_request_as_text_or_json_shares_its_idempotency_key(client: TestClient) -> None:
    key = {"Idempotency-Key": "text-or-json"}
    text = post_text(client, BELL_QASM3, {"shots": 100, "seed": 3, "tag": "run:1"}, **key)
    as_json = client.post(
        "/tasks", json={"circuit": BELL_QASM3, "seed": 3, "tags": {"run": "1"}, "shots": 100}, headers=key
    )
    assert text.status_code == as_json.status_code == 202
    assert as_json.json() == text.json() and as_json.headers["idempotent-replayed"] == "true"
    again = post_text(client, BELL_QASM3, {"shots": 100, "seed": 3, "tag": "run:1"}, **key)
    assert again.json() == text.json() and again.headers["idempotent-replayed"] == "true"
    other = post_text(client, BELL_QASM3, {"shots": 101, "seed": 3, "tag": "run:1"}, **key)
    assert other.status_code == 409
    assert other.json() == {"detail": 'Idempotency-Key "text-or-json" was already used with a different request'}
    malformed = post_text(client, BELL_QASM3, **{"Idempotency-Key": "tab\there"})
    assert malformed.status_code == 422 and malformed.json()["detail"][0]["msg"].startswith("Idempotency-Key: ")
    assert stored(client) == [text.json()["task_id"]]


@pytest.mark.parametrize(("name", "value"), [("shots", "10"), ("seed", "1"), ("tag", "a:b")])
def test_a_json_body_refuses_the_text_bodys_query_parameters(client: TestClient, name: str, value: str) -> None:
    # Ignored, ?shots=10 would run the JSON body's shots (or the default) without a word.
    response = client.post("/tasks", params={name: value}, json={"circuit": BELL_QASM3, "shots": 20})
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "loc": ["query", name],
            "msg": f"{name}: is a query parameter only for a circuit sent as text; put it in the JSON body",
            "type": "value_error",
        }
    ]
    assert stored(client) == []


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/html", "application/xml"])
def test_any_other_body_type_is_415_naming_the_accepted_ones(client: TestClient, content_type: str) -> None:
    response = post_text(client, BELL_QASM3, **{"content-type": content_type})
    assert response.status_code == 415
    detail = response.json()["detail"]
    assert detail.startswith(
        "send the body with Content-Type: application/json, or the circuit alone as text/plain or application/qasm "
        f"(got {content_type})"
    ), detail
    assert stored(client) == []


def test_openapi_documents_both_bodies_and_the_query_with_the_apps_limits(tmp_path: Path) -> None:
    with app_client(tmp_path, max_shots=10, default_shots=5, max_circuit_bytes=5000) as client:
        post = client.get("/openapi.json").json()["paths"]["/tasks"]["post"]
    content = post["requestBody"]["content"]
    assert list(content) == ["application/json", "text/plain", "application/qasm"]
    for media in ("text/plain", "application/qasm"):
        assert content[media]["schema"]["type"] == "string" and content[media]["schema"]["maxLength"] == 5000
        assert content[media]["example"] == BELL_QASM3
    query = {p["name"]: p for p in post["parameters"] if p["in"] == "query"}
    assert set(query) == {"shots", "seed", "tag"}
    assert query["shots"]["schema"]["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": 10}
    assert query["tag"]["schema"]["anyOf"][0]["maxItems"] == 16
    assert all("text/plain" in p["description"] for p in query.values())
    assert "415" in post["responses"] and "text/plain" in post["responses"]["415"]["description"]
