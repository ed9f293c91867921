"""Kill, stop and starve real processes: an acknowledged task is never lost and never run twice."""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.services import (
    BELL_QASM3,
    Cluster,
    Service,
    assert_clean_logs,
    read_until_closed,
    simulation_cpu_seconds,
    slow_circuit,
    stat_fields,
    submit,
    wait_done,
    wait_for,
    wait_simulating,
)
from tests.test_concurrency import submit_many, wait_all

pytestmark = [pytest.mark.crash, pytest.mark.local]

SLOW = slow_circuit(20_000)  # a second or two of simulation


def wait_status(client: httpx.Client, task_id: str, status: str, timeout: float = 30) -> dict:
    return wait_for(
        lambda: (body := client.get(f"/tasks/{task_id}").json())["status"] == status and body,
        timeout,
        f"task {task_id} to be {status}",
    )


def simulation_child(worker: Service) -> int:
    """The pid of the worker's current simulation process, as the worker logged it."""
    pids = [int(p) for p in re.findall(r"simulation process (\d+) ready", worker.log())]
    assert pids and pids[-1] in worker.descendants(), f"worker {worker.pid} has no live simulation process"
    return pids[-1]


def parent_of(pid: int) -> int:
    return int(stat_fields(pid)[1])


def running(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        return stat_fields(pid)[0] != "Z"
    except FileNotFoundError:
        return False


def test_killed_worker_task_is_completed_by_another(make_cluster) -> None:
    cluster: Cluster = make_cluster(LEASE_SECONDS=2)
    cluster.start_api()
    first = cluster.start_worker()
    with cluster.client() as client:
        task_id = submit(client, slow_circuit(50_000), shots=10)  # three seconds or more
        wait_status(client, task_id, "pending")
        second = cluster.start_worker(wait=False)  # starts while the first holds the only task
        simulation = simulation_child(first)
        # SIGKILL to the worker alone, as the kernel's OOM killer sends it: no chance to clean up.
        first.send(signal.SIGKILL)
        assert first.process is not None and first.process.wait(10) == -signal.SIGKILL
        # Its simulation process, busy with the slow task, goes with it rather than run on alone.
        # (The task has seconds left to run: an orphan would still be at it well past the deadline.)
        wait_for(lambda: not running(simulation), 1.5, "the simulation process to die")
        task = wait_done(client, task_id, timeout=90)
    assert task["status"] == "completed", task
    assert task["attempts"] == 2
    assert task["result"] == {"0": 10}
    assert f":{second.pid}:" in cluster.rows()[task_id]["worker_id"]


def test_killed_api_loses_no_acknowledged_task(make_cluster) -> None:
    cluster: Cluster = make_cluster()
    api = cluster.start_api()
    cluster.start_worker()
    acknowledged: list[str] = []
    stop = threading.Event()

    def flood() -> None:
        with cluster.client(timeout=10) as client:
            for _ in range(2000):
                if stop.is_set():
                    return
                try:
                    response = client.post("/tasks", json={"circuit": BELL_QASM3, "shots": 10})
                except httpx.HTTPError:
                    continue  # the API is down: this submission was never acknowledged
                if response.status_code == 202:
                    acknowledged.append(response.json()["task_id"])

    threads = [threading.Thread(target=flood) for _ in range(4)]
    for t in threads:
        t.start()
    wait_for(lambda: len(acknowledged) >= 100, 60, "100 acknowledged submissions")
    api.kill()
    died_at = len(acknowledged)
    cluster.start_api()
    wait_for(lambda: len(acknowledged) >= died_at + 50, 60, "submissions to resume after the restart")
    stop.set()
    for t in threads:
        t.join(30)
    with cluster.client() as client:
        views = wait_all(client, acknowledged, timeout=120)
    assert all(v["status"] == "completed" for v in views.values())
    rows = cluster.rows()
    assert all(rows[t]["attempts"] == 1 for t in acknowledged)


def test_sigterm_mid_task_past_grace_returns_it_to_the_queue(make_cluster) -> None:
    cluster: Cluster = make_cluster(SHUTDOWN_GRACE_SECONDS=0.5)
    cluster.start_api()
    worker = cluster.start_worker()
    with cluster.client() as client:
        before = simulation_cpu_seconds(worker)
        task_id = submit(client, SLOW, shots=10)
        wait_status(client, task_id, "pending")
        wait_simulating(worker, before)  # mid-task, not only claimed
        assert worker.stop() == 0
        assert "returned to the queue at shutdown" in worker.log()
        assert client.get(f"/tasks/{task_id}").json()["status"] == "submitted"
        cluster.start_worker()
        task = wait_done(client, task_id, timeout=90)
    assert task["status"] == "completed"
    assert task["attempts"] == 1  # a graceful hand-back spends no attempt
    assert_clean_logs(worker)


def test_sigterm_mid_task_within_grace_finishes_it(make_cluster) -> None:
    cluster: Cluster = make_cluster(SHUTDOWN_GRACE_SECONDS=60)
    cluster.start_api()
    worker = cluster.start_worker()
    with cluster.client() as client:
        before = simulation_cpu_seconds(worker)
        task_id = submit(client, slow_circuit(10_000), shots=10)  # half a second or more after the next line
        wait_status(client, task_id, "pending")
        wait_simulating(worker, before)  # claimed is not yet running: a SIGTERM would hand it back
        # To the whole process group, as a service manager stops a unit: the worker decides what
        # happens to the running task, not its simulation process or the fork server it came from.
        os.killpg(worker.pid, signal.SIGTERM)
        assert worker.process is not None and worker.process.wait(60) == 0
        task = client.get(f"/tasks/{task_id}").json()
    assert task["status"] == "completed" and task["attempts"] == 1
    assert_clean_logs(worker)


def test_three_workers_thousand_tasks_each_run_exactly_once(make_cluster) -> None:
    cluster: Cluster = make_cluster(SIMULATOR_THREADS=1)  # three workers share two cores
    cluster.start_api()
    cluster.start_workers(3)
    task_ids = submit_many(cluster.base_url, 1000)
    with cluster.client() as client:
        views = wait_all(client, task_ids, timeout=300)
    assert all(v["status"] == "completed" for v in views.values())
    rows = cluster.rows()
    assert len(rows) == 1000
    assert all(r["attempts"] == 1 and r["status"] == "completed" for r in rows.values())
    assert len({r["worker_id"] for r in rows.values()}) == 3
    for worker in cluster.workers:
        assert worker.stop() == 0
        assert_clean_logs(worker)


def test_task_over_the_timeout_fails_and_the_worker_goes_on(make_cluster) -> None:
    cluster: Cluster = make_cluster(TASK_TIMEOUT_SECONDS=1)
    cluster.start_api()
    worker = cluster.start_worker()
    with cluster.client() as client:
        slow = wait_done(client, submit(client, SLOW, shots=10), timeout=60)
        assert slow["status"] == "failed"
        assert slow["error"] == (
            "TimeoutError: the simulation ran longer than TASK_TIMEOUT_SECONDS=1 s and was stopped"
        )
        bell = wait_done(client, submit(client, BELL_QASM3, shots=10), timeout=60)
    assert bell["status"] == "completed"
    assert worker.process is not None and worker.process.poll() is None
    assert_clean_logs(worker)


def test_simulation_child_that_dies_fails_the_task_and_the_worker_goes_on(make_cluster) -> None:
    cluster: Cluster = make_cluster()
    cluster.start_api()
    worker = cluster.start_worker()
    with cluster.client() as client:
        before = simulation_cpu_seconds(worker)
        task_id = submit(client, SLOW, shots=10)
        wait_simulating(worker, before)  # sent to the simulation: a new process would run it
        child = simulation_child(worker)
        fork_server = parent_of(child)
        os.kill(child, signal.SIGKILL)
        task = wait_done(client, task_id, timeout=30)
        assert task["status"] == "failed"
        assert task["error"].startswith("SimulationCrashed: the simulation process was killed by SIGKILL")
        bell = wait_done(client, submit(client, BELL_QASM3, shots=10), timeout=60)
        assert bell["status"] == "completed"
        after = simulation_child(worker)
        assert after != child
        # Forked again by the same fork server, which imported Qiskit once: the worker's restart
        # costs tens of milliseconds, not the ~0.6 s of a fresh import.
        assert parent_of(after) == fork_server and parent_of(fork_server) == worker.pid

        # The fork server killed in its turn (docs/operations.md): the running task fails the
        # same way, and the worker starts a new fork server for the next one.
        before = simulation_cpu_seconds(worker)
        task_id = submit(client, SLOW, shots=10)
        wait_simulating(worker, before)  # sent to the simulation: a new fork server would run it
        os.kill(fork_server, signal.SIGKILL)
        task = wait_done(client, task_id, timeout=30)
        assert task["status"] == "failed"
        assert task["error"].startswith("SimulationCrashed: the simulation process died with the fork server")
        bell = wait_done(client, submit(client, BELL_QASM3, shots=10), timeout=60)
    assert bell["status"] == "completed"
    assert parent_of(simulation_child(worker)) not in (fork_server, worker.pid)
    assert_clean_logs(worker)


def test_stale_worker_cannot_overwrite_the_new_owner(make_cluster) -> None:
    cluster: Cluster = make_cluster(LEASE_SECONDS=1.5)
    cluster.start_api()
    stale = cluster.start_worker()
    with cluster.client() as client:
        # Still running when the next poll sees it pending (it runs twice: here and on the new owner).
        task_id = submit(client, slow_circuit(10_000), shots=10, seed=1)
        wait_status(client, task_id, "pending")
        stale.send(signal.SIGSTOP)  # frozen: no heartbeat, but its simulation child keeps going
        try:
            fresh = cluster.start_worker()
            task = wait_done(client, task_id, timeout=90)
        finally:
            stale.send(signal.SIGCONT)
        wait_for(
            lambda: "result discarded" in stale.log() or "lease lost" in stale.log(), 60, "the stale worker to notice"
        )
        after = client.get(f"/tasks/{task_id}").json()
    row = cluster.rows()[task_id]
    assert task["status"] == "completed" and task["attempts"] == 2
    assert after == task, "the stale worker changed the task after the new owner finished it"
    assert f":{fresh.pid}:" in row["worker_id"]


def test_long_poll_gives_up_at_its_deadline_on_a_running_task(make_cluster) -> None:
    cluster: Cluster = make_cluster()
    cluster.start_api()
    cluster.start_worker()
    with cluster.client() as client:
        task_id = submit(client, SLOW, shots=10)
        wait_status(client, task_id, "pending")
        started = time.monotonic()
        assert client.get(f"/tasks/{task_id}", params={"wait": 0.5}).json()["status"] == "pending"
        waited = time.monotonic() - started
        assert 0.5 <= waited < 1.5, f"the long-poll answered after {waited:.2f} s, not at its 0.5 s deadline"
        client.post(f"/tasks/{task_id}/cancel")


def _request_read(server_port: int, client_port: int) -> bool:
    """The server has read everything this client sent on the connection between the two ports
    (the server side's receive queue in /proc/net/tcp is empty)."""
    wanted = (f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}")
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if (fields[1], fields[2]) == wanted:
            return int(fields[4].split(":")[1], 16) == 0
    return False


def test_sigterm_answers_the_long_polls_in_flight_at_once_and_exits_0(make_cluster) -> None:
    """A stopping API does not hold its graceful stop for the long-polls it is serving, nor cut them
    off at SHUTDOWN_GRACE_SECONDS: each answers 200 with its task or batch as it is (nothing runs
    them: no worker), and the process exits 0 within a second."""
    cluster: Cluster = make_cluster()
    api = cluster.start_api()
    with cluster.client() as client:
        task_id = submit(client, BELL_QASM3, shots=10)
        batch_id = client.post("/batches", json={"tasks": [{"circuit": BELL_QASM3}]}).json()["batch_id"]
    polls = []
    for path in (f"/tasks/{task_id}?wait=30", f"/batches/{batch_id}?wait=30"):
        poll = socket.create_connection(("127.0.0.1", cluster.port), timeout=30)
        poll.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{cluster.port}\r\nConnection: close\r\n\r\n".encode())
        port = poll.getsockname()[1]
        wait_for(functools.partial(_request_read, cluster.port, port), 10, "the API to read the long-poll")
        polls.append(poll)
    stopping = time.monotonic()
    api.send(signal.SIGTERM)
    answers = []
    for poll in polls:
        with poll:
            answers.append(read_until_closed(poll))
    assert api.process is not None and api.process.wait(10) == 0
    took = time.monotonic() - stopping
    assert took < 1.0, f"the API took {took:.1f} s to stop"
    task, batch = (json.loads(answer.partition(b"\r\n\r\n")[2]) for answer in answers)
    assert all(answer.startswith(b"HTTP/1.1 200 ") for answer in answers), answers
    assert task["task_id"] == task_id and task["status"] == "submitted"
    assert batch["batch_id"] == batch_id and batch["done"] is False


def test_a_ctrl_c_while_the_api_stops_on_sigterm_does_not_cut_its_shutdown_short(make_cluster) -> None:
    """On Ctrl-C scripts/run.sh forwards a SIGTERM as the terminal's SIGINT arrives, and either may
    be handled first: a SIGINT after a SIGTERM is not a second Ctrl-C, and the application's own
    shutdown still runs (uvicorn skipped it, and logged the cancelled lifespan's traceback)."""
    cluster: Cluster = make_cluster()
    api = cluster.start_api()
    api.send(signal.SIGTERM)
    api.wait_log("Shutting down")  # uvicorn then waits 0.1 s before the application's shutdown
    api.send(signal.SIGINT)
    assert api.process is not None and api.process.wait(10) == 0
    assert "Application shutdown complete" in api.log(), api.log()
