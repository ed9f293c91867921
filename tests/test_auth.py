"""API keys over HTTP, in-process: open mode, 401s, ownership (404 for another key's work), admin
views, quotas, usage, the rate limit, /metrics and /health, CORS. (Real processes, several API
processes and the fair-share run are in test_tenancy.py.)"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api_server.tokens import hash_token, new_token
from harness.databases import FreshDatabase
from shared.ids import new_id
from shared.models import ApiKey
from shared.store import Store
from tests.services import BELL_QASM3, app_client


@contextlib.contextmanager
def keyed_app(workdir: Path, **settings: Any) -> Iterator[TestClient]:
    """The app in-process on a fresh database of the session's backend (ownership, quotas and
    usage are SQL), with these settings."""
    database = FreshDatabase(workdir)
    try:
        if database.backend == "postgres":
            settings["database_url"] = database.url
        with app_client(workdir, **settings) as client:
            yield client
    finally:
        database.drop()


def make_key(store: Store, name: str, admin: bool = False, max_queued: int | None = None) -> dict[str, str]:
    """A new key's Authorization header."""
    token = new_token()
    assert store.create_key(ApiKey(new_id(), name, admin, max_queued, time.time()), hash_token(token))
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    """An app with three keys: alice, bob and the admin ops."""
    with keyed_app(tmp_path_factory.mktemp("keyed"), metrics_token="m" * 20) as client:
        store = client.app.state.store  # type: ignore[attr-defined]
        keys = {name: make_key(store, name, admin=name == "ops") for name in ("alice", "bob", "ops")}
        yield client, keys


def _post(client: TestClient, headers: dict[str, str], **fields: Any) -> str:
    response = client.post("/tasks", json={"circuit": BELL_QASM3, "shots": 10, **fields}, headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["task_id"])


def test_the_open_service_needs_no_key_and_ignores_one(tmp_path: Path) -> None:
    with keyed_app(tmp_path) as client:
        first = _post(client, {})
        second = _post(client, {"Authorization": "Bearer whatever"})  # ignored: the service is open
        assert client.get("/tasks", headers={"Authorization": "Bearer whatever"}).status_code == 200
        health = client.get("/health").json()
        assert "queue" in health and "workers" in health
        assert client.get("/metrics").status_code == 200
        # Tasks submitted while the service was open share one owner, the empty name, which an
        # admin's list leaves out.
        store = client.app.state.store  # type: ignore[attr-defined]
        assert store.get_task(first).owner == store.get_task(second).owner == ""
        items = client.get("/tasks", headers=make_key(store, "ops", admin=True)).json()["items"]
        assert {item["task_id"] for item in items} == {first, second} and not any("owner" in i for i in items)


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "this service needs an API key: send it as the header Authorization: Bearer <key>"),
        ({"Authorization": "Bearer qtq_not-a-key"}, "this API key is not known here; ask the operator for one"),
        ({"Authorization": "Basic YWxpY2U6eA=="}, "this service needs an API key"),
    ],
)
def test_a_request_without_an_accepted_key_is_401_with_a_challenge(
    keyed: tuple[TestClient, dict[str, dict[str, str]]], headers: dict[str, str], detail: str
) -> None:
    client, _ = keyed
    for method, path in (
        ("GET", "/tasks"),
        ("POST", "/tasks"),
        ("GET", "/tasks/x"),
        ("POST", "/batches"),
        ("GET", "/limits"),
        ("GET", "/usage"),
    ):
        response = client.request(method, path, headers=headers, json={"circuit": BELL_QASM3})
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["detail"].startswith(detail)
    # A circuit sent as text is refused the same way, before its body is read.
    response = client.post("/tasks", content=BELL_QASM3, headers={**headers, "Content-Type": "text/plain"})
    assert response.status_code == 401


def test_public_parts_stay_public_and_health_says_only_that_it_is_up(
    keyed: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    client, keys = keyed
    for path in ("/docs", "/openapi.json", "/", "/static/app.js"):
        assert client.get(path).status_code == 200, path
    assert client.get("/health").json() == {"status": "ok", "database": "ok"}
    assert set(client.get("/health", headers=keys["bob"]).json()) == {"status", "database", "queue", "workers"}


def test_a_revoked_key_is_refused_at_once(tmp_path: Path) -> None:
    with keyed_app(tmp_path) as client:
        store = client.app.state.store  # type: ignore[attr-defined]
        headers = make_key(store, "carol")
        assert client.get("/tasks", headers=headers).status_code == 200
        store.revoke_key("carol", time.time())
        response = client.get("/tasks", headers=headers)
        assert response.status_code == 401 and response.json()["detail"] == "the API key 'carol' has been revoked"
        # The service stays closed: revoking the last key does not reopen it.
        assert client.get("/tasks").status_code == 401


def test_another_keys_work_is_404_everywhere_and_lists_hold_only_ones_own(
    keyed: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    client, keys = keyed
    alice, bob = keys["alice"], keys["bob"]
    task = _post(client, alice, tags={"who": "alice"})
    batch = client.post("/batches", json={"tasks": [{"circuit": BELL_QASM3}]}, headers=alice).json()["batch_id"]
    for method, path in (
        ("GET", f"/tasks/{task}"),
        ("GET", f"/tasks/{task}?wait=0.1"),
        ("GET", f"/tasks/{task}/circuit"),
        ("POST", f"/tasks/{task}/cancel"),
        ("GET", f"/batches/{batch}"),
        ("GET", f"/batches/{batch}/tasks"),
        ("POST", f"/batches/{batch}/cancel"),
    ):
        refused = client.request(method, path, headers=bob)
        missing = client.request(method, path.replace(task, "no-such-id").replace(batch, "no-such-id"), headers=bob)
        assert refused.status_code == 404 and refused.json() == missing.json(), (method, path)
    assert client.get(f"/tasks/{task}", headers=alice).json()["status"] == "submitted", "bob's cancel reached it"
    mine = _post(client, bob)
    listed = client.get("/tasks", headers=bob).json()["items"]
    assert [item["task_id"] for item in listed] == [mine]
    assert client.get("/tasks?tag=who:alice", headers=bob).json()["items"] == []
    assert client.get(f"/tasks?batch_id={batch}", headers=bob).json()["items"] == []
    assert "owner" not in client.get(f"/tasks/{task}", headers=alice).json()
    forbidden = client.get("/tasks?owner=alice", headers=bob)
    assert forbidden.status_code == 403 and "only admin keys" in forbidden.json()["detail"]
    assert client.post(f"/tasks/{task}/cancel", headers=alice).status_code == 200


def test_an_admin_key_sees_everything_with_its_owner(keyed: tuple[TestClient, dict[str, dict[str, str]]]) -> None:
    client, keys = keyed
    alices = _post(client, keys["alice"])
    bobs = _post(client, keys["bob"])
    ops = keys["ops"]
    assert client.get(f"/tasks/{alices}", headers=ops).json()["owner"] == "alice"
    listed = {item["task_id"]: item["owner"] for item in client.get("/tasks", headers=ops).json()["items"]}
    assert listed[alices] == "alice" and listed[bobs] == "bob"
    only = client.get("/tasks?owner=bob", headers=ops).json()["items"]
    assert {item["owner"] for item in only} == {"bob"} and bobs in {item["task_id"] for item in only}
    batch = client.post("/batches", json={"tasks": [{"circuit": BELL_QASM3}]}, headers=keys["bob"]).json()
    assert client.get(f"/batches/{batch['batch_id']}", headers=ops).json()["owner"] == "bob"
    cancelled = client.post(f"/tasks/{bobs}/cancel", headers=ops)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


def test_metrics_need_an_admin_key_or_the_metrics_token(keyed: tuple[TestClient, dict[str, dict[str, str]]]) -> None:
    client, keys = keyed
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=keys["bob"]).status_code == 403
    assert client.get("/metrics", headers=keys["ops"]).status_code == 200
    token = client.get("/metrics", headers={"Authorization": "Bearer " + "m" * 20})
    assert token.status_code == 200 and "qtq_tasks" in token.text
    assert client.get("/metrics", headers={"Authorization": "Bearer " + "m" * 19}).status_code == 401


def test_metrics_token_guards_metrics_even_while_the_service_is_open(tmp_path: Path) -> None:
    """No key exists, so anyone may submit and read tasks; /metrics still needs METRICS_TOKEN."""
    with keyed_app(tmp_path, metrics_token="m" * 20) as client:
        assert client.get("/tasks").status_code == 200
        refused = client.get("/metrics")
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert refused.json()["detail"] == "/metrics needs METRICS_TOKEN as Authorization: Bearer <token>"
        assert client.get("/metrics", headers={"Authorization": "Bearer " + "m" * 19}).status_code == 401
        token = client.get("/metrics", headers={"Authorization": "Bearer " + "m" * 20})
        assert token.status_code == 200 and "qtq_tasks" in token.text


def test_a_quota_answers_429_with_retry_after_and_refuses_a_batch_whole(tmp_path: Path) -> None:
    with keyed_app(tmp_path, default_max_queued=3) as client:
        store = client.app.state.store  # type: ignore[attr-defined]
        small, default = make_key(store, "small", max_queued=2), make_key(store, "default")
        _post(client, small)
        batch = client.post("/batches", json={"tasks": [{"circuit": BELL_QASM3}] * 2}, headers=small)
        assert batch.status_code == 429 and batch.headers["retry-after"] == "5"
        assert batch.json()["detail"] == (
            "key 'small' already has 1 tasks submitted or pending; 2 more would pass its max_queued=2; "
            "retry when some have finished"
        )
        assert len(client.get("/tasks", headers=small).json()["items"]) == 1, "part of the refused batch was stored"
        _post(client, small)
        text = client.post("/tasks", content=BELL_QASM3, headers={**small, "Content-Type": "text/plain"})
        assert text.status_code == 429
        for _ in range(3):  # DEFAULT_MAX_QUEUED for a key without its own
            _post(client, default)
        assert client.post("/tasks", json={"circuit": BELL_QASM3}, headers=default).status_code == 429


def test_a_batch_bigger_than_the_quota_is_a_422_not_a_429_to_retry(tmp_path: Path) -> None:
    """No wait makes room for more tasks than max_queued: such a batch is refused as invalid (a
    client does not retry it), whatever is queued; one that fits is stored."""
    with keyed_app(tmp_path, default_max_queued=3) as client:
        store = client.app.state.store  # type: ignore[attr-defined]
        small = make_key(store, "small", max_queued=2)
        batch = client.post("/batches", json={"tasks": [{"circuit": BELL_QASM3}] * 3}, headers=small)
        assert batch.status_code == 422 and "retry-after" not in batch.headers
        assert batch.json()["detail"] == [
            {
                "type": "value_error",
                "loc": ["body", "tasks"],
                "msg": "tasks: 3 tasks are more than key 'small' may have queued at once (max_queued=2); "
                "send them in batches of at most 2",
            }
        ]
        assert client.get("/tasks", headers=small).json()["items"] == []
        fits = client.post("/batches", json={"tasks": [{"circuit": BELL_QASM3}] * 2}, headers=small)
        assert fits.status_code == 202, fits.text


def test_usage_shows_a_keys_own_figures_and_every_key_to_an_admin(
    keyed: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    client, keys = keyed
    before = client.get("/usage", headers=keys["bob"]).json()["items"]
    assert [item["owner"] for item in before] == ["bob"]
    _post(client, keys["bob"])
    after = client.get("/usage", headers=keys["bob"]).json()["items"][0]
    assert after["today"]["tasks_submitted"] == before[0]["today"]["tasks_submitted"] + 1
    assert set(after["total"]) == {"tasks_submitted", "shots", "simulation_seconds"}
    _post(client, keys["alice"])
    owners = {item["owner"] for item in client.get("/usage", headers=keys["ops"]).json()["items"]}
    assert {"alice", "bob"} <= owners


def test_the_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    with keyed_app(tmp_path, rate_limit_per_second=3) as client:
        headers = make_key(client.app.state.store, "quick")  # type: ignore[attr-defined]
        answers = [client.get("/tasks", headers=headers) for _ in range(5)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
        assert answers[3].headers["retry-after"] == "1"
        assert "RATE_LIMIT_PER_SECOND=3" in answers[3].json()["detail"]
        other = make_key(client.app.state.store, "other")  # type: ignore[attr-defined]
        assert client.get("/tasks", headers=other).status_code == 200, "one key's rate held back another"


def test_with_no_keys_the_rate_limit_counts_per_client_address(tmp_path: Path) -> None:
    with keyed_app(tmp_path, rate_limit_per_second=3) as client:
        answers = [client.get("/tasks") for _ in range(5)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
        assert answers[3].headers["retry-after"] == "1"
        elsewhere = TestClient(client.app, base_url="http://127.0.0.1:8000", client=("192.0.2.7", 40000))
        assert elsewhere.get("/tasks").status_code == 200, "one address's rate held back another"


def test_no_cors_headers_unless_origins_are_listed(tmp_path: Path) -> None:
    preflight = {"Origin": "https://app.example.org", "Access-Control-Request-Method": "POST"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with app_client(tmp_path / "a") as client:
        answer = client.options("/tasks", headers=preflight)
        assert not any(name.startswith("access-control-") for name in answer.headers)
        assert (
            client.post("/tasks", json={"circuit": BELL_QASM3}, headers={"Origin": preflight["Origin"]}).status_code
            == 403
        )
    with app_client(tmp_path / "b", cors_allow_origins=["https://app.example.org"]) as client:
        answer = client.options(
            "/tasks", headers={**preflight, "Access-Control-Request-Headers": "authorization,content-type"}
        )
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == "https://app.example.org"
        assert "authorization" in answer.headers["access-control-allow-headers"].lower()
        other = client.options("/tasks", headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        listed = client.post("/tasks", json={"circuit": BELL_QASM3}, headers={"Origin": preflight["Origin"]})
        assert listed.status_code == 202
        assert (
            client.post("/tasks", json={"circuit": BELL_QASM3}, headers={"Origin": "https://evil.example"}).status_code
            == 403
        )
