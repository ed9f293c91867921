"""A real API process over raw sockets: half-sent requests, idle connections, descriptors running out, Host."""

from __future__ import annotations

import contextlib
import json
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.services import (
    Cluster,
    assert_clean_logs,
    http_get,
    http_request,
    read_until_closed,
    running_cluster,
    wait_for,
)

pytestmark = [pytest.mark.local, pytest.mark.database_independent]

HEADER_TIMEOUT = 2
PARTIAL_REQUEST = b"GET /health HTTP/1.1\r\nHost: x\r\n"
API_LIMIT = 1024
IDLE_CONNECTIONS = 1100
REFUSING = f"refusing connections: out of file descriptors (limit {API_LIMIT})"


@contextlib.contextmanager
def soft_descriptor_limit(soft: int) -> Iterator[None]:
    """Set this process's soft RLIMIT_NOFILE (children inherit it), and put it back afterwards."""
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, before[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("connections"), workers=0, HEADER_TIMEOUT_SECONDS=HEADER_TIMEOUT) as c:
        yield c


def _connect(cluster: Cluster) -> socket.socket:
    return socket.create_connection(("127.0.0.1", cluster.port), timeout=HEADER_TIMEOUT + 5)


TIMED_OUT = {
    "silent": b"",  # opens and says nothing
    "partial headers": PARTIAL_REQUEST,
    "partial body": b"POST /tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100\r\n\r\n{",
}


def test_a_request_not_received_in_time_gets_408_and_the_connection_closed(api: Cluster) -> None:
    # All at once, so the test waits for one timeout rather than one per case.
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        sockets = {name: stack.enter_context(_connect(api)) for name in TIMED_OUT}
        for name, sock in sockets.items():
            sock.sendall(TIMED_OUT[name])
        # A later request on a keep-alive connection has its own deadline.
        kept_alive = stack.enter_context(_connect(api))
        kept_alive.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = b""
        while not first.endswith(b"}"):  # the whole JSON answer
            first += kept_alive.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        kept_alive.sendall(PARTIAL_REQUEST)
        sockets["second request"] = kept_alive
        # A request answered before its body came (a foreign Host: 400) is not answered twice.
        answered = stack.enter_context(_connect(api))
        answered.sendall(b"POST /tasks HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 100\r\n\r\n{")

        answers = {name: read_until_closed(sock) for name, sock in sockets.items()}
        refused = read_until_closed(answered)
    elapsed = time.monotonic() - started
    for name, answer in answers.items():
        assert answer.startswith(b"HTTP/1.1 408 "), (name, answer)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"connection: close" in head.lower()
        assert json.loads(body) == {"detail": "request not received in full within HEADER_TIMEOUT_SECONDS=2"}
    assert refused.startswith(b"HTTP/1.1 400 ") and b" 408 " not in refused
    assert HEADER_TIMEOUT - 0.1 < elapsed < HEADER_TIMEOUT + 2
    assert api.api is not None
    assert_clean_logs(api.api)  # the app that was waiting for the body saw a disconnect, quietly


def test_a_foreign_host_header_gets_400(api: Cluster) -> None:
    with api.client() as client:
        assert client.get("/health", headers={"Host": "evil.example"}).status_code == 400
        assert client.get("/health", headers={"Host": f"evil.example:{api.port}"}).status_code == 400
        assert client.get("/health", headers={"Host": f"[::1]:{api.port}"}).status_code == 200
        assert client.get("/health", headers={"Host": f"localhost:{api.port}"}).status_code == 200


def test_idle_connections_past_the_descriptor_limit_do_not_stop_the_api(make_cluster: type, tmp_path: Path) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < IDLE_CONNECTIONS + 200:
        pytest.skip(f"the hard RLIMIT_NOFILE ({hard}) is too low for {IDLE_CONNECTIONS} test sockets")
    cluster: Cluster = make_cluster(HEADER_TIMEOUT_SECONDS=HEADER_TIMEOUT)
    # Started with a soft limit below the hard one, the API raises it at start-up...
    with soft_descriptor_limit(API_LIMIT):
        api = cluster.start_api()
    raised = min(hard, 65536)
    api.wait_log(f"file descriptor limit raised from {API_LIMIT} to {raised}")
    # ...so soft = hard = 1024 is set from outside, as a machine's hard limit would.
    resource.prlimit(api.pid, resource.RLIMIT_NOFILE, (API_LIMIT, API_LIMIT))

    sockets: list[socket.socket] = []
    with soft_descriptor_limit(IDLE_CONNECTIONS + 200 if hard == resource.RLIM_INFINITY else hard):
        try:
            for _ in range(IDLE_CONNECTIONS):
                sock = _connect(cluster)
                sockets.append(sock)
                with contextlib.suppress(OSError):  # past the limit the server may have dropped it already
                    sock.sendall(PARTIAL_REQUEST)
            opened = time.monotonic()

            def healthy() -> bool:
                try:
                    return http_get(f"{cluster.base_url}/health", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_for(healthy, HEADER_TIMEOUT + 5, "the API to answer /health again")
            assert time.monotonic() - opened < HEADER_TIMEOUT + 5

            timed_out = 0
            for sock in sockets:
                try:
                    answer = read_until_closed(sock)
                except ConnectionResetError:
                    answer = b""  # dropped unaccepted while no descriptor was free
                assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer[:100]
                timed_out += answer.startswith(b"HTTP/1.1 408 ")
            # Every connection the API accepted was answered and closed; the rest were refused.
            assert timed_out > API_LIMIT - 100, timed_out
        finally:
            for sock in sockets:
                sock.close()

    api.wait_log(REFUSING)
    assert api.log().count(REFUSING) == 1  # one line, not one per refused connection
    assert cluster.stop() == {api.log_path.name: 0}
    assert_clean_logs(api)


# Body limits over a real socket: the server counts what it reads, with or without Content-Length.


def test_ten_megabyte_body_is_refused_with_413(client: httpx.Client) -> None:
    response = client.post("/tasks", json={"circuit": "x" * 10_000_000})
    assert response.status_code == 413


def test_streamed_body_without_length_is_cut_off_at_the_limit(client: httpx.Client) -> None:
    sent = 0

    def chunks():  # no Content-Length: the server must count as it reads
        nonlocal sent
        yield b'{"circuit": "'
        for _ in range(200):
            sent += 65536
            yield b"x" * 65536
        yield b'"}'

    response = client.post("/tasks", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_behind_a_tls_proxy_the_forwarded_scheme_counts_for_the_origin_check(api: Cluster) -> None:
    """A TLS-terminating proxy on this machine passes X-Forwarded-Proto: https; uvicorn trusts it
    from 127.0.0.1, so a page of https://<host> may write, and without the header it is another
    origin (http://<host> is what the API itself sees)."""
    host = f"127.0.0.1:{api.port}"
    cancel = f"{api.base_url}/tasks/no-such-task/cancel"  # 404 once let through, 403 when refused
    page = {"host": host, "origin": f"https://{host}"}
    assert http_request("POST", cancel, headers={**page, "x-forwarded-proto": "https"}).status_code == 404
    refused = http_request("POST", cancel, headers=page)
    assert refused.status_code == 403 and refused.json()["detail"].startswith("cross-origin request refused")
