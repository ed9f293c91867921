"""Input meant to hurt: every case is a clear 4xx or a failed task, and the worker keeps serving."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.services import BELL_QASM3, Cluster, assert_clean_logs, running_cluster, submit, wait_done

pytestmark = pytest.mark.local

SECRET = "canary-4f2b9d-do-not-leak"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A private service with a short task timeout and a secret file beside the worker."""
    workdir = tmp_path_factory.mktemp("hostile")
    (workdir / "secret.inc").write_text(f"{SECRET} q;\n")
    with running_cluster(workdir, TASK_TIMEOUT_SECONDS=4) as cluster:
        yield cluster
    for service in cluster.all_services():
        assert SECRET not in service.log()


@pytest.fixture
def hclient(hostile: Cluster) -> Iterator[httpx.Client]:
    with hostile.client() as client:
        yield client


def _fails_with(client: httpx.Client, circuit: str, prefix: str, timeout: float = 60) -> str:
    task = wait_done(client, submit(client, circuit, shots=10), timeout=timeout)
    assert task["status"] == "failed", task
    assert task["error"].startswith(prefix), task["error"]
    assert SECRET not in task["error"] and "root:" not in task["error"]
    return task["error"]


@pytest.mark.parametrize(
    "target",
    ["/dev/zero", "/proc/self/environ", "../../etc/passwd", "/etc/passwd", "secret.inc", "./secret.inc"],
)
@pytest.mark.parametrize("version", [2, 3])
def test_includes_outside_the_allow_list_are_refused_unread(hclient: httpx.Client, target: str, version: int) -> None:
    if version == 3:
        circuit = f'OPENQASM 3.0;\ninclude "{target}";\nqubit[1] q;\nbit[1] c;\nc[0] = measure q[0];\n'
    else:
        circuit = f'OPENQASM 2.0;\ninclude "{target}";\nqreg q[1];\ncreg c[1];\nmeasure q -> c;\n'
    error = _fails_with(hclient, circuit, "IncludeNotAllowed: ", timeout=20)
    assert f'"{target}"' in error


def test_include_hidden_behind_a_comment_is_still_refused(hclient: httpx.Client) -> None:
    circuit = 'OPENQASM 3.0;\ninclude /* sneaky */ "secret.inc";\nqubit[1] q;\n'
    _fails_with(hclient, circuit, "IncludeNotAllowed: ", timeout=20)


def test_hundred_thousand_qubits_fail_or_finish_cleanly(hclient: httpx.Client) -> None:
    circuit = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[100000] q;\nbit[1] c;\nh q[0];\nc[0] = measure q[0];\n'
    task = wait_done(hclient, submit(hclient, circuit, shots=10), timeout=60)
    if task["status"] == "completed":
        assert sum(task["result"].values()) == 10
    else:
        assert ": " in task["error"] and "\n" not in task["error"]


def test_hundred_thousand_gates_run(hclient: httpx.Client) -> None:
    circuit = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\n' + "x q[0];\n" * 100_000
    circuit += "c = measure q;\n"
    task = wait_done(hclient, submit(hclient, circuit, shots=10), timeout=120)
    assert task["status"] in {"completed", "failed"}
    if task["status"] == "completed":
        assert task["result"] == {"00": 10}
    else:
        assert task["error"].startswith("TimeoutError: ")


def test_loop_with_a_huge_iteration_count_times_out(hclient: httpx.Client) -> None:
    circuit = (
        'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[1] q;\nbit[1] c;\n'
        "for int i in [0:1000000000] { h q[0]; }\nc[0] = measure q[0];\n"
    )
    _fails_with(hclient, circuit, "TimeoutError: the simulation ran longer than TASK_TIMEOUT_SECONDS=4 s")


def test_worker_still_serves_after_all_that(hclient: httpx.Client, hostile: Cluster) -> None:
    task = wait_done(hclient, submit(hclient, BELL_QASM3, shots=50))
    assert task["status"] == "completed"
    assert all(w.process is not None and w.process.poll() is None for w in hostile.workers)


def test_locked_database_gives_503_with_retry_after(make_cluster) -> None:
    cluster: Cluster = make_cluster(BUSY_TIMEOUT_MS=200)
    cluster.start_api()
    with cluster.client() as client:
        task_id = submit(client, BELL_QASM3)
        with cluster.database.locked():
            response = client.post("/tasks", json={"circuit": BELL_QASM3})
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "1"
            assert response.json() == {"detail": "Database is busy; retry shortly"}
        assert client.post("/tasks", json={"circuit": BELL_QASM3}).status_code == 202
        assert client.get(f"/tasks/{task_id}").status_code == 200
    assert cluster.api is not None
    assert_clean_logs(cluster.api)
