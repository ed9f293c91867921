"""In-process: what the cross-site, content-type and Host rules refuse, and the headers every answer carries."""

from __future__ import annotations

import asyncio
import errno
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api_server import descriptors
from api_server.app import create_app
from shared.config import Settings

pytestmark = pytest.mark.database_independent

BASE = "http://127.0.0.1:8000"
CANCEL = "/tasks/no-such-task/cancel"  # refused before routing, or 404 once let through
JSON = {"content-type": "application/json"}


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(_env_file=None, database_name=str(tmp_path / "tasks.db"), **values)  # type: ignore[call-arg]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(tmp_path)), base_url=BASE) as client:
        yield client


CROSS_SITE = "cross-site request refused (Sec-Fetch-Site: cross-site)"


def _not_ours(origin: str) -> str:
    return f"cross-origin request refused: Origin {origin} is not this service's {BASE}"


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({"origin": "http://evil.example"}, _not_ours("http://evil.example")),
        ({"origin": "http://localhost:8000"}, _not_ours("http://localhost:8000")),  # the same machine
        ({"origin": "http://127.0.0.1:8001"}, _not_ours("http://127.0.0.1:8001")),
        ({"origin": "https://127.0.0.1:8000"}, _not_ours("https://127.0.0.1:8000")),
        ({"origin": "null"}, "cross-origin request refused (Origin: null)"),
        ({"sec-fetch-site": "cross-site"}, CROSS_SITE),
        ({"sec-fetch-site": "cross-site", "origin": BASE}, CROSS_SITE),
    ],
)
def test_a_cross_site_write_is_refused_with_403(client: TestClient, headers: dict[str, str], detail: str) -> None:
    response = client.post(CANCEL, headers={**JSON, **headers})
    assert response.status_code == 403
    assert response.json()["detail"] == detail
    submit = client.post("/tasks", json={"circuit": "OPENQASM 3.0;"}, headers=headers)
    assert submit.status_code == 403
    # A form or fetch elsewhere may send text/plain without a preflight: the origin check stands alone there.
    text = client.post("/tasks", content=b"OPENQASM 3.0;", headers={"content-type": "text/plain", **headers})
    assert text.status_code == 403
    assert client.get("/tasks", params={"limit": 1}).json()["items"] == []  # nothing was stored


@pytest.mark.parametrize(
    "headers",
    [
        {},  # curl, Python clients
        {"origin": BASE},
        {"origin": "HTTP://127.0.0.1:8000"},
        {"sec-fetch-site": "same-origin", "origin": BASE},
        {"sec-fetch-site": "none"},  # typed into the address bar, or a bookmark
    ],
)
def test_a_same_origin_or_headerless_write_goes_through(client: TestClient, headers: dict[str, str]) -> None:
    assert client.post(CANCEL, headers={**JSON, **headers}).status_code == 404
    assert client.post(CANCEL, headers=headers).status_code == 404  # `curl -X POST .../cancel`: no body, no type


def test_the_origin_is_compared_with_the_host_the_request_names(tmp_path: Path) -> None:
    app = create_app(_settings(tmp_path, allowed_hosts=["qtq.example.org"]))
    with TestClient(app, base_url="https://qtq.example.org") as client:
        ok = client.post(CANCEL, headers={"origin": "https://qtq.example.org:443"})
        assert ok.status_code == 404
        assert client.post(CANCEL, headers={"origin": "http://qtq.example.org"}).status_code == 403


def test_reads_are_never_refused_for_their_origin(client: TestClient) -> None:
    response = client.get("/tasks", headers={"origin": "http://evil.example", "sec-fetch-site": "cross-site"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx", "text/html"],
)
def test_a_write_whose_body_is_not_json_is_refused_with_415(client: TestClient, content_type: str) -> None:
    response = client.post("/tasks", content=b'{"circuit": "OPENQASM 3.0;"}', headers={"content-type": content_type})
    assert response.status_code == 415
    detail = response.json()["detail"]
    assert "Content-Type: application/json" in detail and content_type in detail and "\n" not in detail
    assert "text/plain or application/qasm" in detail  # what POST /tasks takes besides JSON
    # An empty form has no body, but it is still a form.
    assert client.post(CANCEL, headers={"content-type": content_type}).status_code == 415
    assert client.get("/tasks", params={"limit": 1}).json()["items"] == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/qasm"])
def test_circuit_text_is_taken_by_post_tasks_alone(client: TestClient, content_type: str) -> None:
    response = client.post(CANCEL, content=b"x=y", headers={"content-type": content_type})
    assert response.status_code == 415
    assert response.json()["detail"].startswith(
        f"send the body as JSON with Content-Type: application/json (got {content_type})"
    )
    batch = client.post("/batches", content=b"OPENQASM 3.0;", headers={"content-type": content_type})
    assert batch.status_code == 415
    assert client.post("/tasks", content=b"OPENQASM 3.0;", headers={"content-type": content_type}).status_code == 202


def test_curl_data_binary_gets_a_message_that_helps(client: TestClient) -> None:
    # What `curl --data-binary @bell.qasm http://.../tasks` sends.
    response = client.post(
        "/tasks", content=b"OPENQASM 3.0;", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 415
    detail = response.json()["detail"]
    assert (
        "curl" in detail
        and "-H 'Content-Type: text/plain'" in detail
        and "-H 'Content-Type: application/json'" in detail
    )


def test_a_body_without_a_content_type_is_refused(client: TestClient) -> None:
    response = client.post("/tasks", content=b'{"circuit": "OPENQASM 3.0;"}')
    assert response.status_code == 415
    assert "no Content-Type" in response.json()["detail"]


def test_json_with_a_charset_is_json(client: TestClient) -> None:
    response = client.post(
        "/tasks", content=b'{"shots": 1}', headers={"content-type": "Application/JSON; charset=utf-8"}
    )
    assert response.status_code == 422  # reached validation: the circuit is missing


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost", "LOCALHOST:8000", "[::1]:8000", "[::1]"])
def test_the_default_allowed_hosts_answer(client: TestClient, host: str) -> None:
    assert client.get("/tasks", headers={"host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.2", "[::2]:8000", "[::1"])
def test_any_other_host_gets_400(client: TestClient, host: str) -> None:
    response = client.get("/tasks", headers={"host": host})
    assert response.status_code == 400 and response.text == "Invalid host header"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_allowed_hosts_replace_the_defaults_and_star_allows_any(tmp_path: Path) -> None:
    app = create_app(_settings(tmp_path, allowed_hosts="qtq.example.org, *.lab.example"))
    with TestClient(app, base_url=BASE) as client:
        assert client.get("/tasks", headers={"host": "qtq.example.org:8000"}).status_code == 200
        assert client.get("/tasks", headers={"host": "a.lab.example"}).status_code == 200
        assert client.get("/tasks").status_code == 400
    with TestClient(create_app(_settings(tmp_path, allowed_hosts=["*"])), base_url=BASE) as client:
        assert client.get("/tasks", headers={"host": "anything.example"}).status_code == 200


def test_api_host_is_allowed_too(tmp_path: Path) -> None:
    settings = _settings(tmp_path, api_host="10.0.0.5")
    assert settings.trusted_hosts == ["127.0.0.1", "localhost", "[::1]", "10.0.0.5"]
    assert _settings(tmp_path, api_host="fd00::5").trusted_hosts[-1] == "[fd00::5]"
    assert _settings(tmp_path, api_host="0.0.0.0").trusted_hosts == ["127.0.0.1", "localhost", "[::1]"]


def test_allowed_hosts_from_the_environment_as_a_list_or_comma_separated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOWED_HOSTS", "qtq.example.org,10.0.0.5")
    assert _settings(tmp_path).allowed_hosts == ["qtq.example.org", "10.0.0.5"]
    monkeypatch.setenv("ALLOWED_HOSTS", '["qtq.example.org", "[::1]"]')
    assert _settings(tmp_path).allowed_hosts == ["qtq.example.org", "[::1]"]
    monkeypatch.setenv("ALLOWED_HOSTS", "")
    assert _settings(tmp_path).allowed_hosts is None


def test_a_wildcard_api_host_without_allowed_hosts_logs_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="api_server.app")
    with TestClient(create_app(_settings(tmp_path, api_host="0.0.0.0")), base_url=BASE):
        pass
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "set ALLOWED_HOSTS to the names clients use" in warnings[0]
    caplog.clear()
    with TestClient(create_app(_settings(tmp_path, api_host="0.0.0.0", allowed_hosts=["*"])), base_url=BASE):
        pass
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_every_answer_says_nosniff_and_no_referrer(client: TestClient) -> None:
    for response in (client.get("/tasks"), client.get("/tasks/nope"), client.post(CANCEL, headers=JSON)):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("path", ["/", "/ui/tasks/some-id", "/ui/batches/some-id"])
def test_dashboard_pages_forbid_inline_script_and_framing(client: TestClient, path: str) -> None:
    response = client.get(path)
    policy = {part.split()[0]: part.split()[1:] for part in response.headers["content-security-policy"].split("; ")}
    assert policy["script-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in response.text and not re.search(r"\son[a-z]+\s*=", response.text)
    # auth.js first: app.js sends every request through it.
    assert response.text.index('src="/static/auth.js"') < response.text.index('src="/static/app.js"')


@pytest.mark.parametrize("name", ["auth.js", "app.js", "batch.js", "style.css"])
def test_static_files_are_served_with_their_type_and_nosniff(client: TestClient, name: str) -> None:
    response = client.get(f"/static/{name}")
    assert response.status_code == 200
    expected = "text/css" if name.endswith(".css") else "text/javascript"
    assert response.headers["content-type"].startswith(expected)  # nosniff: a browser runs only what says so
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


ORIGIN = "https://lab.example.org"
OTHER_ORIGIN = "https://evil.example"


def _preflight(client: TestClient, origin: str) -> Any:
    headers = {
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
    }
    return client.options("/tasks", headers=headers)


def _cors_headers(response: Any) -> list[str]:
    return [name for name in response.headers if name.lower().startswith("access-control-")]


def test_no_cors_headers_while_cors_allow_origins_is_unset(client: TestClient) -> None:
    for origin in (ORIGIN, OTHER_ORIGIN):
        answers = [_preflight(client, origin), client.get("/tasks", headers={"origin": origin}), client.get("/")]
        for response in answers:
            assert _cors_headers(response) == [], (origin, response.request.method, response.headers)


def test_cors_answers_the_listed_origins_only(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path, cors_allow_origins=ORIGIN)), base_url=BASE) as client:
        allowed = _preflight(client, ORIGIN)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == ORIGIN
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        assert "POST" in allowed.headers["access-control-allow-methods"]
        assert "access-control-allow-credentials" not in allowed.headers  # keys, never cookies
        # Without Allow-Origin a browser stops there; Starlette still sends its other CORS headers.
        refused = _preflight(client, OTHER_ORIGIN)
        assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
        read = client.get("/tasks", headers={"origin": ORIGIN})
        assert read.status_code == 200 and read.headers["access-control-allow-origin"] == ORIGIN
        assert "access-control-allow-origin" not in client.get("/tasks", headers={"origin": OTHER_ORIGIN}).headers
        # A listed origin's pages may write too (they send a key, never a cookie); others may not.
        written = client.post("/tasks", json={"circuit": "OPENQASM 3.0;"}, headers={"origin": ORIGIN})
        assert written.status_code == 202 and written.headers["access-control-allow-origin"] == ORIGIN
        stranger = client.post("/tasks", json={"circuit": "OPENQASM 3.0;"}, headers={"origin": OTHER_ORIGIN})
        assert stranger.status_code == 403 and "access-control-allow-origin" not in stranger.headers


def test_running_out_of_descriptors_on_accept_is_one_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(descriptors, "_last_report", float("-inf"))
    loop = asyncio.new_event_loop()
    passed_on: list[dict[str, Any]] = []
    monkeypatch.setattr(loop, "default_exception_handler", passed_on.append)
    # What asyncio's selector loop reports when accept() fails with EMFILE.
    context = {"message": "socket.accept() out of system resource", "exception": OSError(errno.EMFILE, "Too many")}
    try:
        with caplog.at_level(logging.WARNING, logger="api_server.descriptors"):
            descriptors.handle_loop_exception(loop, context)
            descriptors.handle_loop_exception(loop, context)  # within REPORT_EVERY_SECONDS: not again
            other = {"message": "Task exception was never retrieved", "exception": ValueError("x")}
            descriptors.handle_loop_exception(loop, other)
    finally:
        loop.close()
    assert [r.getMessage() for r in caplog.records] == [
        f"refusing connections: out of file descriptors (limit {descriptors.descriptor_limit()})"
    ]
    assert caplog.records[0].exc_info is None
    assert passed_on == [other]
