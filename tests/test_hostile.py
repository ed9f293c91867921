"""Input meant to hurt: every case is a clear 4xx or a failed task, and the worker keeps serving."""

from __future__ import annotations

import errno
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.services import (
    BELL_QASM3,
    Cluster,
    Service,
    assert_clean_logs,
    running_cluster,
    slow_circuit,
    submit,
    wait_done,
)
from worker.sandbox import RSS_MARGIN_MB

pytestmark = pytest.mark.local

SECRET = "canary-4f2b9d-do-not-leak"
HEADER3 = 'OPENQASM 3.0;\ninclude "stdgates.inc";\n'


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A private service with a short task timeout, 1 GiB of simulation memory and a secret file
    beside the worker."""
    workdir = tmp_path_factory.mktemp("hostile")
    (workdir / "secret.inc").write_text(f"{SECRET} q;\n")
    with running_cluster(workdir, workers=2, TASK_TIMEOUT_SECONDS=2, WORKER_MAX_MEMORY_MB=1024) as cluster:
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


def test_a_long_loop_times_out(hclient: httpx.Client) -> None:
    _fails_with(hclient, slow_circuit(900_000), "TimeoutError: the simulation ran longer than TASK_TIMEOUT_SECONDS=2 s")


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


# Ways to slip an include past a check that reads the text differently from the parsers. `{path}`
# is a named pipe: a parser that opens it blocks there, and the test sees a reader appear.
INCLUDE_VECTORS = {
    "plain": 'OPENQASM 3.0;\ninclude "{path}";\nqubit[1] q;\nbit[1] c;\nc[0] = measure q[0];\n',
    "pragma opens a comment": '#pragma /*\ninclude "{path}";\n// */\nqubit[1] q;\n',
    "comment opener in a string": 'bit[2] d = "/*";\ninclude "{path}";\n// */\n',
    "line comment in a string": 'bit[2] d = "//";\ninclude "{path}";\n',
    "comment closer in a string": '/* "*/" */ include "{path}";\n',
    "unicode before": '²include "{path}";\nqubit[1] q;\n',
    "unicode after": 'include² "{path}";\nqubit[1] q;\n',
    "letter before": 'éinclude "{path}";\n',
    "split across lines": 'include\n"{path}"\n;\nqubit[1] q;\n',
    "CR line ends": '// a comment\rinclude "{path}";\rqubit[1] q;\r',
    "CR in a block comment": '/* \r */ include "{path}";\n',
    "nested block comments": '/* /* */ include "{path}"; */\nqubit[1] q;\n',
    "byte order mark": '\ufeffinclude "{path}";\n',
    "OpenQASM 2": 'OPENQASM 2.0;\ninclude "{path}";\nqreg q[1];\ncreg c[1];\nmeasure q -> c;\n',
    "OpenQASM 2 with a BOM": '\ufeffOPENQASM 2.0;\ninclude "{path}";\nqreg q[1];\n',
    "OpenQASM 2, CR line ends": 'OPENQASM 2.0;\r// x\rinclude "{path}";\rqreg q[1];\r',
}


def _reader_present(pipe: Path) -> bool:
    """True if some process has the pipe open for reading (a writer can then open it at once)."""
    try:
        fd = os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as error:
        assert error.errno == errno.ENXIO, error
        return False
    os.close(fd)  # the reader gets end-of-file and moves on
    return True


def test_no_include_trick_makes_a_parser_open_a_file(hclient: httpx.Client, hostile: Cluster) -> None:
    name = f"pipe-{uuid.uuid4().hex[:8]}.inc"
    pipes = {  # the path as the circuit names it -> the pipe it resolves to in the worker's directory
        str(hostile.workdir / f"abs-{name}"): hostile.workdir / f"abs-{name}",
        name: hostile.workdir / name,
        f"../{name}": hostile.workdir.parent / name,
    }
    for pipe in pipes.values():
        os.mkfifo(pipe)
    tasks = {
        submit(hclient, template.replace("{path}", path), shots=10): f"{vector} / {path}"
        for vector, template in INCLUDE_VECTORS.items()
        for path in pipes
    }
    opened: list[str] = []
    pending = set(tasks)
    deadline = time.monotonic() + 60
    while pending:
        opened += [str(pipe) for pipe in pipes.values() if _reader_present(pipe)]
        for task_id in list(pending):
            task = hclient.get(f"/tasks/{task_id}").json()
            if task["status"] in ("completed", "failed", "cancelled"):
                pending.discard(task_id)
                assert task["status"] == "failed", (tasks[task_id], task)
                assert "\n" not in task["error"] and ": " in task["error"]
        assert time.monotonic() < deadline, f"still running: {[tasks[t] for t in pending]}"
    assert not opened, f"a parser opened {opened}"


MEMORY_HOGS = {
    "ten million bits": HEADER3 + "qubit[1] q;\nbit[10000000] c;\nh q[0];\nc[0] = measure q[0];\n",
    "ten million qubits": HEADER3 + "qubit[10000000] q;\nbit[1] c;\nc[0] = measure q[0];\n",
    "gates that double": HEADER3
    + "gate g0 a { x a; }\n"
    + "".join(f"gate g{i} a {{ g{i - 1} a; g{i - 1} a; }}\n" for i in range(1, 41))
    + "qubit[1] q;\nbit[1] c;\ng40 q[0];\nc[0] = measure q[0];\n",
    "a 2^64 loop": HEADER3
    + "qubit[1] q;\nbit[1] c;\nfor uint i in [0:1:18446744073709551615] { x q[0]; }\nc[0] = measure q[0];\n",
    "a billion iterations": HEADER3
    + "qubit[1] q;\nbit[1] c;\nfor int i in [0:1000000000] { x q[0]; }\nc[0] = measure q[0];\n",
}


# How far short of a child's true peak PeakMemory's highest reading may fall: the hogs grow ~200
# MiB/s, and a child may be stopped between two readings (5 ms apart, further under load).
SAMPLING_SLACK_MB = 48


class PeakMemory:
    """Samples the resident memory of every simulation process of the given workers from /proc."""

    def __init__(self, workers: list[Service]) -> None:
        self.workers = workers
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            for worker in self.workers:
                for pid in worker.descendants():
                    try:
                        status = Path(f"/proc/{pid}/status").read_text()
                    except OSError:
                        continue
                    for line in status.splitlines():
                        if line.startswith("VmRSS:"):
                            self.peak_mb = max(self.peak_mb, int(line.split()[1]) / 1024)


def _all_fail_in_time(client: httpx.Client, circuits: dict[str, str], prefix: str, within: float) -> None:
    started = time.monotonic()
    ids = {submit(client, circuit, shots=10): name for name, circuit in circuits.items()}
    for task_id, name in ids.items():
        task = wait_done(client, task_id, timeout=within + 30)
        assert task["status"] == "failed", (name, task)
        assert task["error"].startswith(prefix), (name, task["error"])
    assert time.monotonic() - started < within * len(circuits)


def test_oversized_circuits_are_refused_before_they_grow(hclient: httpx.Client, hostile: Cluster) -> None:
    with PeakMemory(hostile.workers) as memory:
        _all_fail_in_time(hclient, MEMORY_HOGS, "CircuitTooLarge: ", within=5)
    assert memory.peak_mb < 1.5 * 1024
    assert wait_done(hclient, submit(hclient, BELL_QASM3, shots=10))["status"] == "completed"


def test_the_simulation_process_is_stopped_at_its_memory_limit(make_cluster) -> None:
    """With the early size checks lifted, only the child's memory limit stands between these
    circuits and the host: each fails with MemoryLimitExceeded, and the child is stopped once its
    resident memory passes WORKER_MAX_MEMORY_MB + 256 MiB, overshooting by less than 256 MiB."""
    limit_mb = 256  # small, so that the hog reaches it in a second or two
    stopped_at_mb = limit_mb + RSS_MARGIN_MB
    cluster: Cluster = make_cluster(
        WORKER_MAX_MEMORY_MB=limit_mb,
        MAX_QUBITS=10**12,
        MAX_CLBITS=10**12,
        MAX_LOOP_ITERATIONS=10**30,
        MAX_UNROLLED_OPERATIONS=10**30,
        TASK_TIMEOUT_SECONDS=60,
    )
    cluster.start_api()
    workers = [cluster.start_worker()]
    # The fastest grower (~200 MiB/s); the others reach the limit the same way, only later.
    hogs = {"ten million bits": MEMORY_HOGS["ten million bits"]}
    with cluster.client() as client, PeakMemory(workers) as memory:
        _all_fail_in_time(client, hogs, "MemoryLimitExceeded: ", within=60)
        assert wait_done(client, submit(client, BELL_QASM3, shots=10))["status"] == "completed"
    # Within SAMPLING_SLACK_MB of the stop, far past the limit itself.
    assert stopped_at_mb - SAMPLING_SLACK_MB < memory.peak_mb < stopped_at_mb + 256, memory.peak_mb
    for worker in workers:
        assert f"passed WORKER_MAX_MEMORY_MB={limit_mb}" in worker.log()
        assert_clean_logs(worker)
