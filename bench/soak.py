"""`make soak`: a steady mixed load on a real API and two real workers for SOAK_SECONDS (600 by
default), over loopback, on a fresh SQLite database (SOAK_BACKEND=postgres: a fresh database on
TEST_DATABASE_URL's server).

The load: about SOAK_RATE submissions a second (30 by default) of Bell circuits, circuits that fail,
slow circuits cancelled at once, and a heavy circuit (QFT on 20 qubits) every HEAVY_EVERY_SECONDS;
every task is followed by long-polling `GET /tasks/{id}?wait=` until it is final. It prints a row
per minute (per tenth of a shorter run), then the verdict: memory and descriptor growth per hour
fitted over the second half, and whether every task reached a final state exactly once, checked
against the API's counts and the database itself once the load has drained.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import random
import re
import sys
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from prometheus_client.parser import text_string_to_metric_families

from bench.circuits import BELL, qft
from bench.run import machine
from bench.service import Client, ServiceBench
from bench.soak_report import FINAL, Audit, Finished, Sample, interval_seconds, latency_by_kind, table, verdict
from harness.processes import assert_clean_logs, http_get

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
SOAK_RATE = float(os.environ.get("SOAK_RATE", "30"))
SOAK_BACKEND = os.environ.get("SOAK_BACKEND", "sqlite")
HEAVY_EVERY_SECONDS = 20.0
CLIENT_THREADS = 16
# A task not final this long after its submission is reported as stuck rather than waited for.
GIVE_UP_SECONDS = 300.0

FAILING = [
    'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\nh q[0]\ncx q[0], q[1];\nc = measure q;\n',
    'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[1] q;\nbit[1] c;\nfoo q[0];\nc[0] = measure q[0];\n',
    'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nh q[0];\n',  # measures nothing
]
# About 0.2 s of simulation: still queued or running when its cancel arrives.
SLOW = (
    'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[1] q;\nbit[1] c;\n'
    "for int i in [1:3000] { x q[0]; }\nc[0] = measure q[0];\n"
)
HEAVY = qft(20)
# What each kind of task must end as; a cancelled task may have finished before its cancel arrived.
EXPECTED = {"bell": {"completed"}, "failing": {"failed"}, "cancel": {"cancelled", "completed"}, "heavy": {"completed"}}
MIX = [("bell", 0.84), ("failing", 0.10), ("cancel", 0.06)]
SIMULATION_READY = re.compile(r"simulation process \d+ ready")


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class SoakClient(Client):
    """The benchmark's keep-alive client, taking any answer's status instead of asserting one."""

    def call(self, method: str, path: str, payload: Any = None) -> tuple[int, dict[str, Any]]:
        self._reopen_if_idle()
        body = json.dumps(payload) if payload is not None else None
        try:
            self.conn.request(method, path, body, {"Content-Type": "application/json"})
            response = self.conn.getresponse()
            return response.status, json.loads(response.read())
        except (OSError, http.client.HTTPException):
            self.conn.close()  # the next request connects again
            raise


class Load:
    """The load generator's threads and what they saw."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.started = time.monotonic()
        self.local = threading.local()
        self.finished: list[Finished] = []
        self.final: dict[str, str] = {}  # task id -> the final state the long-poll read
        self.kinds: dict[str, str] = {}
        self.errors: Counter[str] = Counter()  # "POST /tasks 503", "GET /tasks/{id} ConnectionResetError"
        self.stuck: list[str] = []

    def _client(self) -> SoakClient:
        if not hasattr(self.local, "client"):
            self.local.client = SoakClient(self.base_url, timeout=120)
        client: SoakClient = self.local.client
        return client

    def run(self, kind: str, number: int) -> None:
        """Submit one task of this kind, cancel it if that is its kind, and long-poll until it is final."""
        client = self._client()
        payload: dict[str, Any] = {
            "bell": {"circuit": BELL, "shots": 100, "seed": number},
            "failing": {"circuit": FAILING[number % len(FAILING)], "shots": 10},
            "cancel": {"circuit": SLOW, "shots": 10},
            "heavy": {"circuit": HEAVY, "shots": 100, "seed": number},
        }[kind]
        submitted = time.monotonic()  # latency runs from sending the submission
        answer = self._call(client, "POST", "/tasks", "/tasks", payload, (202,))
        if answer is None:
            return
        task_id = answer["task_id"]
        self.kinds[task_id] = kind
        if kind == "cancel":
            self._call(client, "POST", f"/tasks/{task_id}/cancel", "/tasks/{id}/cancel", None, (200, 202, 409))
        while time.monotonic() - submitted < GIVE_UP_SECONDS:
            body = self._call(client, "GET", f"/tasks/{task_id}?wait=30", "/tasks/{id}?wait=", None, (200,))
            if body is not None and body["status"] in FINAL:
                now = time.monotonic()
                self.finished.append(Finished(now - self.started, now - submitted, body["status"], kind))
                self.final[task_id] = body["status"]
                return
        self.stuck.append(task_id)

    def _call(
        self, client: SoakClient, method: str, path: str, route: str, payload: Any, expected: tuple[int, ...]
    ) -> dict[str, Any] | None:
        """The answer's body, or None after counting an unexpected status or a connection error."""
        where = f"{method} {route}"
        try:
            status, body = client.call(method, path, payload)
        except (OSError, http.client.HTTPException) as error:
            self.errors[f"{where} {type(error).__name__}"] += 1
            return None
        if status not in expected:
            self.errors[f"{where} {status}"] += 1
            return None
        return body


def sample(bench: ServiceBench, at: float) -> Sample:
    """Resident memory and open descriptors of each role, and the database's size, now."""
    roles = bench.processes()
    return Sample(
        at=at,
        api_mb=sum(map(_rss_mb, roles["api"])),
        worker_mb=sum(map(_rss_mb, roles["worker"])),
        simulation_mb=sum(map(_rss_mb, roles["simulation"])),
        api_fds=sum(map(_fds, roles["api"])),
        worker_fds=sum(map(_fds, roles["worker"] + roles["simulation"])),
        database_mb=_database_mb(bench),
    )


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _database_mb(bench: ServiceBench) -> float:
    database = bench.cluster.database
    if database.backend == "postgres":
        with psycopg.connect(database.url) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return float(row[0]) / 2**20 if row else 0.0
    files = [database.path, Path(f"{database.path}-wal"), Path(f"{database.path}-shm")]
    return sum(f.stat().st_size for f in files if f.exists()) / 2**20


def audit(bench: ServiceBench, load: Load) -> Audit:
    """Every task the load submitted, as the client, the database and the API's counters see it."""
    result = Audit(submitted=len(load.kinds), final_by_client=Counter(load.final.values()))
    problems = result.unexpected
    for kind, count in sorted(Counter(load.kinds[t] for t in load.stuck).items()):
        problems.append(f"{count} {kind} tasks not final after {GIVE_UP_SECONDS:g} s")
    for what, count in sorted(load.errors.items()):
        problems.append(f"{count} x {what}")
    unread = len(load.kinds) - len(load.final) - len(load.stuck)
    if unread:
        problems.append(f"{unread} acknowledged tasks whose final state the client never read")
    for task_id, status in load.final.items():
        if status not in EXPECTED[load.kinds[task_id]]:
            problems.append(f"a {load.kinds[task_id]} task ended {status} (task {task_id})")
            break
    rows = bench.cluster.rows()
    strangers = set(rows) - set(load.kinds)
    if strangers:
        problems.append(f"{len(strangers)} tasks in the database that no client submitted")
    missing = set(load.kinds) - set(rows)
    if missing:
        problems.append(f"{len(missing)} acknowledged tasks missing from the database")
    states = Counter(row["status"] for row in rows.values())
    stuck = states["submitted"] + states["pending"]
    if stuck:
        problems.append(f"{stuck} tasks still submitted or pending in the database")
    changed = [t for t, status in load.final.items() if t in rows and rows[t]["status"] != status]
    if changed:
        problems.append(f"{len(changed)} tasks changed state after the client read them final")
    reruns = [t for t, row in rows.items() if (row["attempts"] or 0) > 1]
    if reruns:
        problems.append(f"{len(reruns)} tasks were claimed more than once")
    unclaimed = [t for t, row in rows.items() if row["status"] != "cancelled" and (row["attempts"] or 0) != 1]
    if unclaimed:
        problems.append(f"{len(unclaimed)} completed or failed tasks with attempts other than 1")

    queue = http_get(f"{bench.cluster.base_url}/health", timeout=30).json()["queue"]
    if any(queue.get(state, 0) != states[state] for state in set(queue) | set(states)):
        problems.append(f"/health counts {queue} differ from the database's {dict(states)}")
    metrics = _metrics(bench.cluster.base_url)
    if metrics.get(("qtq_tasks_submitted_total", "")) != len(rows):
        problems.append(
            f"qtq_tasks_submitted_total is {metrics.get(('qtq_tasks_submitted_total', ''))}, not {len(rows)}"
        )
    for state in FINAL:
        counted = metrics.get(("qtq_tasks_finished_total", state), 0.0)
        if counted != states[state]:
            problems.append(
                f"qtq_tasks_finished_total{{outcome={state}}} is {counted:g}, the database holds {states[state]}"
            )
    return result


def _metrics(base_url: str) -> dict[tuple[str, str], float]:
    text = http_get(f"{base_url}/metrics", timeout=30).text
    return {
        (metric.name, metric.labels.get("outcome", "")): metric.value
        for family in text_string_to_metric_families(text)
        for metric in family.samples
    }


def drive(bench: ServiceBench, load: Load, samples: list[Sample]) -> None:
    """Offer the load for SOAK_SECONDS, sampling the processes meanwhile; then let it drain."""
    rng = random.Random(7)
    kinds, weights = zip(*MIX, strict=True)
    step = interval_seconds(SOAK_SECONDS)
    every = min(2.0, step / 6)  # several samples per interval, one per window of the verdict's fit
    next_sample = next_heavy = 0.0
    number = 0
    futures: list[Future[None]] = []
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        while (now := time.monotonic() - load.started) < SOAK_SECONDS:
            if now >= next_sample:
                samples.append(sample(bench, now))
                next_sample += every
            if now >= next_heavy:
                futures.append(pool.submit(load.run, "heavy", number))
                next_heavy += HEAVY_EVERY_SECONDS
            else:
                futures.append(pool.submit(load.run, rng.choices(kinds, weights)[0], number))
            number += 1
            if number % max(1, int(SOAK_RATE * step)) == 0:
                log(f"{now:.0f} s: {number:,} submissions offered, {len(load.finished):,} final")
            time.sleep(max(0.0, load.started + number / SOAK_RATE - time.monotonic()))
        log(f"load stopped after {number:,} submissions; draining")
    samples.append(sample(bench, time.monotonic() - load.started))
    for future in futures:
        if (error := future.exception()) is not None:
            load.errors[f"load generator {type(error).__name__}: {error}"] += 1


def main() -> int:
    started = datetime.now(UTC)
    log(f"{SOAK_SECONDS:g} s on {SOAK_BACKEND}, 1 API and 2 workers, {SOAK_RATE:g} submissions/s")
    samples: list[Sample] = []
    with ServiceBench(SOAK_BACKEND, workers=2) as bench:
        load = Load(bench.cluster.base_url)
        drive(bench, load, samples)
        kept = bench.workdir / "soak-samples.json"
        kept.write_text(json.dumps([dataclasses.asdict(s) for s in samples]))
        log(f"samples in {kept}")
        result = audit(bench, load)
        codes = bench.cluster.stop()
        if any(code != 0 for code in codes.values()):
            result.unexpected.append(f"a process exited badly: {codes}")
        for service in bench.cluster.all_services():
            try:
                assert_clean_logs(service)
            except AssertionError:
                result.unexpected.append(f"{service.log_path.name} holds a traceback")
        children = sum(len(SIMULATION_READY.findall(worker.log())) for worker in bench.cluster.workers)
    host = machine()
    print(f"Soak of {started:%Y-%m-%d %H:%M} UTC: {SOAK_SECONDS:g} s, {SOAK_BACKEND}, 1 API + 2 workers")
    print(f"Machine: {host['cpus']} cores, {host['memory_gib']} GiB, Python {host['python']}, {host['platform']}")
    print(
        f"Load: {SOAK_RATE:g} submissions/s offered: Bell {MIX[0][1]:.0%}, failing {MIX[1][1]:.0%}, "
        f"cancelled at once {MIX[2][1]:.0%}, QFT-20 every {HEAVY_EVERY_SECONDS:g} s; every result long-polled"
    )
    print()
    print("\n".join(table(load.finished, samples, SOAK_SECONDS)))
    print()
    print(latency_by_kind(load.finished))
    print(
        f"simulation processes started: {children:,} (one per worker at start-up, then a fresh one "
        "each time a worker stops a running simulation, as for a cancel)"
    )
    line = verdict(samples, SOAK_SECONDS, result)
    print(line)
    return 0 if line.startswith("verdict: PASS") else 1


if __name__ == "__main__":
    raise SystemExit(main())
