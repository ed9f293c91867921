"""The Python client (`qtq`, in client/) against the real running service: submit, wait, results,
errors, lists, cancel, batches, sweeps, Qiskit circuits, the asyncio twin, and retries that never
run a circuit twice. Pure request/answer logic is checked on httpx.MockTransport."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import math
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qtq import (
    APIError,
    AsyncClient,
    Client,
    Conflict,
    ConnectionFailed,
    NotFound,
    ServiceUnavailable,
    TaskCancelled,
    TaskFailed,
    TooLarge,
    Unauthorized,
    ValidationError,
    WaitTimeout,
)
from qtq._http import parse_retry_after

from tests.services import BELL_QASM3, wait_for

BROKEN_BELL = BELL_QASM3.replace("h q[0];", "h q[0]")
BROKEN_ERROR = "QASM3ParsingError: line 6:0 missing ';' at 'cx'"
ONE = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[1] q;\nbit[1] c;\nx q[0];\nc[0] = measure q[0];\n'
ZERO = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[1] q;\nbit[1] c;\nc[0] = measure q[0];\n'
RX = (
    'OPENQASM 3.0;\ninclude "stdgates.inc";\ninput float theta;\nqubit[1] q;\nbit[1] c;\n'
    "rx(theta) q[0];\nc[0] = measure q[0];\n"
)
# About 14 s of simulation (70 us an iteration): long enough to be cancelled while it runs.
SLOW = (
    'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[1] q;\nbit[1] c;\n'
    "for int i in [1:200000] { x q[0]; }\nc[0] = measure q[0];\n"
)


@pytest.fixture
def qtq_client(base_url: str) -> Iterator[Client]:
    with Client(base_url, timeout=30) as client:
        yield client


def marker() -> str:
    return uuid.uuid4().hex[:12]


# -- submit, wait, result ---------------------------------------------------------------------


def test_submit_then_result_gives_the_seeded_bell_counts(qtq_client: Client) -> None:
    task = qtq_client.submit(BELL_QASM3, shots=1000, seed=7)
    assert task.status == "submitted" and not task.done
    assert task.result(timeout=60) == {"11": 511, "00": 489}
    assert task.status == "completed" and task.done and task.error is None
    assert task.data["num_qubits"] == 2 and task.counts == {"11": 511, "00": 489}
    assert qtq_client.get(task.id).counts == {"11": 511, "00": 489}


def test_a_failed_task_raises_task_failed_with_its_one_line_error(qtq_client: Client) -> None:
    task = qtq_client.submit(BROKEN_BELL)
    with pytest.raises(TaskFailed) as raised:
        task.result(timeout=60)
    assert raised.value.error == BROKEN_ERROR and str(raised.value) == BROKEN_ERROR
    assert raised.value.task_id == task.id and not isinstance(raised.value, TaskCancelled)
    assert task.status == "failed" and task.error == BROKEN_ERROR


def test_unknown_ids_are_not_found(qtq_client: Client) -> None:
    for action in (
        lambda: qtq_client.get("no/such task"),
        lambda: qtq_client.cancel("no-such-task"),
        lambda: qtq_client.get_batch("no-such-batch"),
    ):
        with pytest.raises(NotFound) as raised:
            action()
        assert raised.value.status_code == 404 and raised.value.detail in ("Task not found", "Batch not found")


def test_a_refused_request_raises_validation_error_with_the_field_messages(qtq_client: Client) -> None:
    with pytest.raises(ValidationError) as raised:
        qtq_client.submit(BELL_QASM3, shots=0, method="fastest")
    messages = raised.value.messages
    assert "shots: Input should be greater than or equal to 1" in messages
    assert any(m.startswith("method: Input should be 'automatic'") for m in messages)
    assert isinstance(raised.value, APIError) and raised.value.status_code == 422
    with pytest.raises(ValidationError) as in_batch:
        qtq_client.submit_batch([BELL_QASM3, {"circuit": BELL_QASM3, "shots": -1}])
    assert in_batch.value.messages == ["tasks.1.shots: Input should be greater than or equal to 1"]


class CountingTransport(httpx.HTTPTransport):
    """A real transport that counts the requests per path."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return super().handle_request(request)


def test_list_follows_the_pages_and_filters_by_tag(base_url: str) -> None:
    run = marker()
    counting = CountingTransport()
    with Client(base_url, transport=counting) as client:
        ids = [client.submit(ONE, shots=1, tags={"run": run, "i": str(i)}).id for i in range(5)]
        counting.paths.clear()
        listed = list(client.list(tag={"run": run}, page_size=2))
        assert [task.id for task in listed] == ids[::-1]  # newest first
        assert counting.paths == ["/tasks"] * 3  # 2 + 2 + 1
        assert [t.id for t in client.list(tag=[f"run:{run}", "i:3"])] == [ids[3]]
        assert [t.tags for t in client.list(tag=f"run:{run}", page_size=500)][0] == {"run": run, "i": "4"}
        for task in listed:
            task.wait(timeout=60)
        assert len(list(client.list(tag={"run": run}, status="completed"))) == 5


def test_cancel_a_running_task_then_its_result_raises_cancelled(qtq_client: Client) -> None:
    task = qtq_client.submit(SLOW, shots=1)
    with pytest.raises(WaitTimeout) as timed_out:
        task.wait(timeout=0.2)
    assert isinstance(timed_out.value, TimeoutError)
    cancelled = qtq_client.cancel(task.id)
    assert cancelled.status == "cancelled" or cancelled.data.get("cancel_requested") is True
    with pytest.raises(TaskCancelled):
        cancelled.result(timeout=30)
    assert cancelled.status == "cancelled"
    # Cancelling again is not an error (the first answer may have been lost), and changes nothing.
    assert qtq_client.cancel(task.id).status == "cancelled"
    finished = qtq_client.submit(ONE, shots=1)
    finished.wait(timeout=60)
    with pytest.raises(Conflict) as late:
        finished.cancel()
    assert late.value.detail == "Task is already completed"


# -- batches ----------------------------------------------------------------------------------


def test_a_batch_waits_and_gives_its_tasks_in_order(qtq_client: Client, capfd: pytest.CaptureFixture[str]) -> None:
    study = marker()
    items = [ONE, ZERO, {"circuit": ONE, "shots": 3}, ZERO]
    batch = qtq_client.submit_batch(items, shots=10, seed=1, tags={"study": study})
    assert batch.task_ids is not None and len(batch.task_ids) == 4
    assert batch.wait(timeout=60, progress=True) is batch  # stderr is not a terminal here: no bar
    assert batch.state is not None and batch.state.done and batch.state.states == {"completed": 4}
    tasks = list(batch.tasks())
    assert [t.id for t in tasks] == batch.task_ids
    assert [t.result() for t in tasks] == [{"1": 10}, {"0": 10}, {"1": 3}, {"0": 10}]
    again = qtq_client.get_batch(batch.id)
    assert again.state is not None and again.state.total == 4 and again.state.tags == {"study": study}
    assert [t.id for t in qtq_client.list(batch_id=batch.id)] == batch.task_ids[::-1]
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_a_batch_wait_times_out_and_the_batch_can_be_cancelled(qtq_client: Client) -> None:
    batch = qtq_client.submit_batch([SLOW, SLOW, SLOW], shots=1)
    with pytest.raises(WaitTimeout):
        batch.wait(timeout=0.3, progress=False)
    state = batch.cancel()
    assert state.total == 3
    batch.wait(timeout=30)
    assert batch.state is not None and batch.state.states == {"cancelled": 3}
    for task in batch.tasks():
        with pytest.raises(TaskCancelled):
            task.result()


# -- what a task can produce ------------------------------------------------------------------


def test_a_sweep_gives_one_counts_per_point_and_its_points(qtq_client: Client) -> None:
    task = qtq_client.submit(RX, shots=100, seed=7, parameters={"theta": [0, math.pi]}, observables=["Z"])
    assert task.result(timeout=60) == [{"0": 100}, {"1": 100}]
    assert task.is_sweep and task.counts is None
    points = task.points
    assert points is not None
    assert [p.parameters for p in points] == [{"theta": 0.0}, {"theta": math.pi}]
    assert [p.expectation_values for p in points] == [pytest.approx([1.0]), pytest.approx([-1.0])]


def test_memory_and_expectation_values_of_one_run(qtq_client: Client) -> None:
    task = qtq_client.submit(BELL_QASM3, shots=8, seed=3, memory=True, observables=["ZZ", "XX", [["ZZ", 0.5]]])
    counts = task.result(timeout=60)
    assert isinstance(counts, dict) and sum(counts.values()) == 8
    assert task.memory is not None and len(task.memory) == 8 and set(task.memory) <= {"00", "11"}
    assert task.expectation_values == pytest.approx([1.0, 1.0, 0.5])
    unmeasured = qtq_client.submit(BELL_QASM3.replace("c = measure q;\n", ""), observables=["ZZ"])
    assert unmeasured.result(timeout=60) == {} and unmeasured.expectation_values == pytest.approx([1.0])


def test_a_qiskit_circuit_is_exported_and_its_parameters_bound_by_object_or_exported_name(
    qtq_client: Client,
) -> None:
    bell = QuantumCircuit(2, 2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure([0, 1], [0, 1])
    assert qtq_client.submit(bell, shots=1000, seed=7).result(timeout=60) == {"11": 511, "00": 489}
    t = Parameter("t")  # `t` is also a gate's name: qasm3.dumps calls the input t_0
    turn = QuantumCircuit(1, 1)
    turn.rx(t, 0)
    turn.measure(0, 0)
    by_object = qtq_client.submit(turn, shots=10, parameters={t: [0, math.pi]})
    by_name = qtq_client.submit(turn, shots=10, parameters={"t_0": [0, math.pi]})
    assert by_object.result(timeout=60) == by_name.result(timeout=60) == [{"0": 10}, {"1": 10}]
    with pytest.raises(ValueError, match="not a parameter of the circuit"):
        qtq_client.submit(turn, parameters={Parameter("other"): 1.0})
    with pytest.raises(TypeError, match="OpenQASM text or a qiskit.QuantumCircuit"):
        qtq_client.submit(b"OPENQASM 3.0;")  # type: ignore[arg-type]


# -- the asyncio twin -------------------------------------------------------------------------


def test_the_async_client_does_the_same(base_url: str) -> None:
    async def scenario() -> None:
        run = marker()
        async with AsyncClient(base_url) as client:
            tasks = [await client.submit(BELL_QASM3, shots=1000, seed=7, tags={"run": run}) for _ in range(3)]
            results = await asyncio.gather(*(task.result(timeout=60) for task in tasks))
            assert results == [{"11": 511, "00": 489}] * 3
            assert [t.id async for t in client.list(tag={"run": run}, page_size=2)] == [t.id for t in tasks][::-1]
            with pytest.raises(TaskFailed, match="QASM3ParsingError"):
                await (await client.submit(BROKEN_BELL)).result(timeout=60)
            with pytest.raises(NotFound):
                await client.get("no-such-task")
            with pytest.raises(ValidationError):
                await client.submit(BELL_QASM3, shots=0)
            batch = await client.submit_batch([ONE, ZERO], shots=5)
            await batch.wait(timeout=60, progress=False)
            assert [await t.result() async for t in batch.tasks()] == [{"1": 5}, {"0": 5}]
            slow = await client.submit(SLOW, shots=1)
            await slow.cancel()
            with pytest.raises(TaskCancelled):
                await slow.result(timeout=30)
            assert (await client.get(slow.id)).status == "cancelled"

    asyncio.run(scenario())


# -- retries: real services -------------------------------------------------------------------


class LossyProxy:
    """A TCP proxy to the API that loses the answer on its first connection: it passes the request
    on, and closes the client's connection as soon as the API starts answering (a dropped network)."""

    def __init__(self, target: httpx.URL) -> None:
        self.target = (target.host, target.port or 80)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = 0
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return  # closed
            self.connections += 1
            upstream = socket.create_connection(self.target)
            self.sockets += [downstream, upstream]
            lose = self.connections == 1
            threading.Thread(target=self._pump, args=(downstream, upstream, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, downstream, lose), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, lose: bool | None) -> None:
        try:
            while data := source.recv(65536):
                if lose:  # the API has answered: drop the answer and both connections
                    for sock in (sink, source):
                        sock.shutdown(socket.SHUT_RDWR)  # wakes the other pump, which close() would not
                        sock.close()
                    return
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def test_a_lost_answer_is_retried_with_the_same_key_and_runs_the_circuit_once(base_url: str) -> None:
    run = marker()
    proxy = LossyProxy(httpx.URL(base_url))
    try:
        with Client(proxy.url) as client:
            task = client.submit(ONE, shots=1, tags={"run": run})
    finally:
        proxy.close()
    assert proxy.connections == 2  # the first answer was lost; the retry got the stored task's
    with Client(base_url) as client:
        assert [t.id for t in client.list(tag={"run": run})] == [task.id]
        assert client.get(task.id).wait(timeout=60).counts == {"1": 1}


@pytest.mark.local
def test_a_full_queue_is_retried_after_its_retry_after(make_cluster: Any, caplog: pytest.LogCaptureFixture) -> None:
    """MAX_QUEUED_BYTES leaves room for one circuit: the second gets 503 with Retry-After: 5, and
    the client tries again after 5 s, by when the first has been cancelled."""
    cluster = make_cluster(MAX_QUEUED_BYTES=len(ONE) + 10)
    cluster.start_api()  # no worker: the first task stays queued
    caplog.set_level(logging.WARNING, logger="qtq")
    with Client(cluster.base_url) as client:
        first = client.submit(ONE, shots=1)
        outcome: dict[str, Any] = {}

        def submit_second() -> None:
            started = time.monotonic()
            outcome["task"] = client.submit(ZERO, shots=1)
            outcome["seconds"] = time.monotonic() - started

        second = threading.Thread(target=submit_second)
        second.start()
        wait_for(lambda: any("answered 503" in r.getMessage() for r in caplog.records), 10, "a 503 and a retry")
        client.cancel(first.id)
        second.join(30)
        assert "task" in outcome, "the second submission never got through"
        assert outcome["seconds"] >= 4.9  # Retry-After: 5, not the 0.5 s backoff
        assert client.get(outcome["task"].id).status == "submitted"
    (retry,) = [r.getMessage() for r in caplog.records if "answered 503" in r.getMessage()]
    assert retry == "POST /tasks answered 503; retrying in 5.0 s (retry 1)"


# -- retries and errors: the request/answer logic alone ---------------------------------------


def mock_client(answers: list[Any], sent: list[httpx.Request], **options: Any) -> Client:
    """A Client whose requests get `answers` in turn (a Response, or an exception to raise)."""

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return Client("http://qtq.test", transport=httpx.MockTransport(handler), **options)


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The retry pauses asked for, instead of sleeping them."""
    asked: list[float] = []
    monkeypatch.setattr("qtq._http.time.sleep", asked.append)
    return asked


ACCEPTED = httpx.Response(202, json={"task_id": "t-1", "status": "submitted"})


@pytest.mark.database_independent
def test_every_retry_of_a_submission_sends_the_same_idempotency_key(pauses: list[float]) -> None:
    sent: list[httpx.Request] = []
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    answers: list[Any] = [
        httpx.ConnectError("refused"),
        httpx.Response(503, headers={"Retry-After": "3"}, json={"detail": "queue full"}),
        httpx.Response(429, headers={"Retry-After": later}, json={"detail": "slow down"}),
        httpx.ReadTimeout("no answer"),
        ACCEPTED,
        ACCEPTED,
    ]
    with mock_client(answers, sent) as client:
        assert client.submit(BELL_QASM3).id == "t-1"
        client.submit(BELL_QASM3)
    keys = [request.headers["Idempotency-Key"] for request in sent]
    assert len(set(keys[:5])) == 1 and keys[5] != keys[0]  # one key per submission, kept on its retries
    assert uuid.UUID(keys[0]).version == 4
    assert 0.25 <= pauses[0] <= 0.5 and pauses[1] == 3.0 and 28 <= pauses[2] <= 30 and 2.0 <= pauses[3] <= 4.0


@pytest.mark.database_independent
def test_an_idempotency_key_of_ones_own_is_sent_as_given_and_a_batch_gets_one_too() -> None:
    sent: list[httpx.Request] = []
    batch = httpx.Response(202, json={"batch_id": "b-1", "task_ids": ["t-1"], "status": "submitted"})
    with mock_client([ACCEPTED, batch, batch], sent) as client:
        client.submit(BELL_QASM3, idempotency_key="experiment-42")
        client.submit_batch([BELL_QASM3])
        client.submit_batch([BELL_QASM3], idempotency_key="sweep-7")
    keys = [request.headers["Idempotency-Key"] for request in sent]
    assert keys[0] == "experiment-42" and uuid.UUID(keys[1]).version == 4 and keys[2] == "sweep-7"
    assert [request.url.path for request in sent] == ["/tasks", "/batches", "/batches"]


@pytest.mark.database_independent
def test_retries_run_out_into_a_qtq_error_never_an_httpx_one(pauses: list[float]) -> None:
    sent: list[httpx.Request] = []
    busy = [httpx.Response(503, headers={"Retry-After": "1"}, json={"detail": "Database is busy"})] * 3
    with mock_client(busy, sent, retries=2) as client, pytest.raises(ServiceUnavailable) as unavailable:
        client.get("t-1")
    assert unavailable.value.detail == "Database is busy" and len(sent) == 3 and pauses == [1.0, 1.0]
    refused: list[Any] = [httpx.ConnectError("refused")] * 2
    with mock_client(refused, sent, retries=1) as client, pytest.raises(ConnectionFailed) as unreachable:
        client.get("t-1")
    assert isinstance(unreachable.value.__cause__, httpx.ConnectError)
    assert "GET http://qtq.test/tasks/t-1 failed: ConnectError: refused" in str(unreachable.value)


@pytest.mark.database_independent
@pytest.mark.parametrize(
    ("answer", "error", "detail"),
    [
        (httpx.Response(401, json={"detail": "API key required"}), Unauthorized, "API key required"),
        (httpx.Response(403, json={"detail": "not yours"}), Unauthorized, "not yours"),
        (httpx.Response(409, json={"detail": "key reused"}), Conflict, "key reused"),
        (httpx.Response(413, json={"detail": "circuit too large"}), TooLarge, "circuit too large"),
        (
            httpx.Response(507, json={"detail": "disk full"}, headers={"Retry-After": "10"}),
            ServiceUnavailable,
            "disk full",
        ),
        (httpx.Response(500, text="Internal Server Error"), APIError, "Internal Server Error"),
        (httpx.Response(200, text="<html>"), APIError, "the answer is not JSON: '<html>'"),
    ],
)
def test_each_status_becomes_its_error(answer: httpx.Response, error: type[APIError], detail: str) -> None:
    sent: list[httpx.Request] = []
    with mock_client([answer], sent, api_key="secret") as client, pytest.raises(error) as raised:
        client.get("t-1")
    assert raised.value.detail == detail and raised.value.status_code == answer.status_code
    assert sent[0].headers["Authorization"] == "Bearer secret"


@pytest.mark.database_independent
def test_by_default_five_retries_with_pauses_doubling_to_at_most_ten_seconds(pauses: list[float]) -> None:
    sent: list[httpx.Request] = []
    with mock_client([httpx.ConnectError("refused")] * 6, sent) as client, pytest.raises(ConnectionFailed):
        client.get("t-1")
    assert len(sent) == 6 and len(pauses) == 5
    for pause, doubled in zip(pauses, (0.5, 1, 2, 4, 8), strict=True):
        assert doubled / 2 <= pause <= doubled  # jittered by a factor of 0.5 to 1
    pauses.clear()
    with mock_client([httpx.ConnectError("refused")] * 8, sent, retries=7) as client, pytest.raises(ConnectionFailed):
        client.get("t-1")
    assert all(5 <= pause <= 10 for pause in pauses[5:]) and len(pauses) == 7  # 16 s and 32 s cut to 10 s


@pytest.mark.database_independent
def test_a_429_that_outlasts_every_retry_is_service_unavailable(pauses: list[float]) -> None:
    sent: list[httpx.Request] = []
    slow_down = [httpx.Response(429, headers={"Retry-After": "1"}, json={"detail": "rate limit"})] * 3
    with mock_client(slow_down, sent, retries=2) as client, pytest.raises(ServiceUnavailable) as refused:
        client.submit(BELL_QASM3)
    assert refused.value.status_code == 429 and refused.value.detail == "rate limit" and pauses == [1.0, 1.0]


@pytest.mark.database_independent
def test_the_url_and_key_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QTQ_URL", "http://qtq.example:9000/")
    monkeypatch.setenv("QTQ_API_KEY", "from-env")
    with Client() as client:
        assert client.url == "http://qtq.example:9000"
    sent: list[httpx.Request] = []
    with mock_client([ACCEPTED], sent) as client:
        client.submit(BELL_QASM3)
    assert sent[0].headers["Authorization"] == "Bearer from-env"
    monkeypatch.delenv("QTQ_URL")
    with Client() as client:
        assert client.url == "http://127.0.0.1:8000"
    with pytest.raises(ValueError, match="url must start with http:// or https://"):
        Client("127.0.0.1:8000")


@pytest.mark.database_independent
def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    now = time.time()
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(email.utils.formatdate(now + 10, usegmt=True), now) == pytest.approx(10, abs=1)
    assert parse_retry_after(email.utils.formatdate(now - 10, usegmt=True), now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


@pytest.mark.database_independent
def test_the_progress_bar_is_off_on_a_pipe_and_on_in_a_notebook(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from qtq import progress

    with progress.ProgressBar(True, "batch") as bar:  # stderr is a pipe here
        bar.update(1, 2)
        bar.update(2, 2)
        assert not bar.shown
    assert capfd.readouterr() == ("", "")
    # In Jupyter stderr is no terminal either, but the notebook shows the bar (here without
    # ipywidgets: tqdm's text bar, which a notebook draws as it is).
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    with progress.ProgressBar(True, "batch") as bar:
        bar.update(2, 2, failed=1)
        assert bar.shown
    shown = capfd.readouterr().err
    assert "batch: 100%" in shown and "2/2" in shown and "failed=1" in shown
    with progress.ProgressBar(False, "batch") as bar:
        bar.update(1, 2)
    assert capfd.readouterr() == ("", "")
