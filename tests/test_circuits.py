"""Circuits run end to end through the real API and workers on Aer."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from tests.services import BELL_QASM2, BELL_QASM3, submit, wait_done


def _assert_bell(task: dict, shots: int) -> None:
    assert task["status"] == "completed", task
    assert "error" not in task
    # Both outcomes appear unless there are too few shots to expect both (p = 2^-shots).
    assert set(task["result"]) == {"00", "11"} if shots >= 20 else set(task["result"]) <= {"00", "11"}
    assert sum(task["result"].values()) == shots
    assert None not in task.values()
    for key in ("created_at", "started_at", "finished_at"):
        assert key in task
    assert task["created_at"] <= task["started_at"] <= task["finished_at"]


@pytest.mark.parametrize("circuit", [BELL_QASM3, BELL_QASM2], ids=["openqasm3", "openqasm2"])
def test_bell_completes_with_00_and_11(client: httpx.Client, circuit: str) -> None:
    task = wait_done(client, submit(client, circuit))
    _assert_bell(task, 1024)
    assert task["attempts"] == 1


def test_readme_curl_examples_do_what_the_readme_says(client: httpx.Client) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    payloads = [json.loads(p) for p in re.findall(r"-d '(\{.*?\})'", readme, re.DOTALL)]
    bell3, bell2, broken, typo, sweep, observables, batch, tagged = payloads
    assert bell3 == {"circuit": BELL_QASM3, "shots": 1000, "seed": 7}
    assert bell2 == {"circuit": BELL_QASM2}
    response = client.post("/tasks", json=bell3)
    assert response.status_code == 202
    _assert_bell(wait_done(client, response.json()["task_id"]), 1000)
    _assert_bell(wait_done(client, client.post("/tasks", json=bell2).json()["task_id"]), 1024)
    failed = wait_done(client, client.post("/tasks", json=broken).json()["task_id"])
    assert failed["error"] == "QASM3ParsingError: line 5:0 missing ';' at 'cx'"
    assert failed["error"] in readme
    _check_sweep_and_observables_examples(client, readme, sweep, observables)
    _check_tags_example(client, tagged)
    _check_batch_example(client, batch)
    refused = client.post("/tasks", json=typo)
    assert refused.status_code == 422
    assert json.dumps(refused.json(), separators=(",", ":")) in readme


def test_shots_are_honoured(client: httpx.Client) -> None:
    for shots in (1, 37, 5000):
        _assert_bell(wait_done(client, submit(client, BELL_QASM3, shots=shots)), shots)


def test_same_seed_gives_identical_counts(client: httpx.Client) -> None:
    first = wait_done(client, submit(client, BELL_QASM3, shots=2000, seed=1234))
    second = wait_done(client, submit(client, BELL_QASM3, shots=2000, seed=1234))
    assert first["result"] == second["result"]
    assert first["seed"] == 1234


def test_user_defined_gates_run(client: httpx.Client) -> None:
    circuit = (
        'OPENQASM 3.0;\ninclude "stdgates.inc";\ngate bell a, b { h a; cx a, b; }\n'
        "qubit[2] q;\nbit[2] c;\nbell q[0], q[1];\nc = measure q;\n"
    )
    _assert_bell(wait_done(client, submit(client, circuit, shots=500)), 500)


def test_forty_qubit_ghz_runs_on_the_stabilizer_method(client: httpx.Client) -> None:
    gates = "".join(f"cx q[{i}], q[{i + 1}];\n" for i in range(39))
    circuit = f'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[40] q;\nbit[40] c;\nh q[0];\n{gates}c = measure q;\n'
    task = wait_done(client, submit(client, circuit, shots=100, seed=3))
    assert task["status"] == "completed", task
    assert set(task["result"]) <= {"0" * 40, "1" * 40}
    assert sum(task["result"].values()) == 100


FAILURES = {
    "syntax error": (
        'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nh q[0]\ncx q[0], q[1];\n',
        ["QASM3ParsingError: ", "line 5:0", "missing ';'"],
    ),
    "openqasm2 syntax error": (
        'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\nh q[0]\ncx q[0],q[1];\n',
        ["QASM2ParseError: ", "line 5, column 0", "';'"],
    ),
    "undefined gate": (
        'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nfoo q[0];\n',
        ["QASM3ImporterError: ", "line 4", "'foo' is not defined"],
    ),
    "out-of-range index": (
        'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\nh q[5];\nc = measure q;\n',
        ["IndexError: ", "index 5", "register 'q' of size 2", "line 5"],
    ),
    "no measurements": (
        'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nh q[0];\ncx q[0], q[1];\n',
        ["NoMeasurements: ", "measures nothing"],
    ),
    "disallowed include": (
        'OPENQASM 3.0;\ninclude "/etc/passwd";\nqubit[2] q;\n',
        ["IncludeNotAllowed: ", '"/etc/passwd"', '"stdgates.inc"'],
    ),
    "unsupported version": ("OPENQASM 4.0;\nqubit[1] q;\n", ["UnsupportedVersion: ", "OPENQASM 4"]),
}


@pytest.mark.parametrize("name", list(FAILURES))
def test_failures_say_what_to_fix(client: httpx.Client, name: str) -> None:
    circuit, expected = FAILURES[name]
    task = wait_done(client, submit(client, circuit))
    assert task["status"] == "failed", task
    assert "result" not in task
    error = task["error"]
    assert error.startswith(expected[0]), error
    for fragment in expected[1:]:
        assert fragment in error, error
    assert "\n" not in error and "Traceback" not in error
    assert "site-packages" not in error and "/root" not in error
    assert None not in task.values()


def test_memory_hungry_circuit_fails_fast_with_aers_figure(client: httpx.Client) -> None:
    gates = "".join(f"cx q[{i}], q[{i + 1}];\n" for i in range(39))
    circuit = (
        f'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[40] q;\nbit[40] c;\nh q[0];\nt q[0];\n{gates}c = measure q;\n'
    )
    task = wait_done(client, submit(client, circuit), timeout=30)
    assert task["status"] == "failed"
    assert task["error"].startswith("SimulationError: Insufficient memory"), task["error"]
    assert "Required memory: 16777216M" in task["error"]


def test_long_poll_answers_when_the_task_finishes(client: httpx.Client) -> None:
    task_id = submit(client, BELL_QASM3, shots=100)
    task = client.get(f"/tasks/{task_id}", params={"wait": 30}).json()
    assert task["status"] == "completed"  # one request, no polling loop
    assert task["parse_ms"] >= 0 and task["transpile_ms"] >= 0 and task["duration_ms"] > 0
    assert client.get("/tasks/nope", params={"wait": 30}).status_code == 404
    for bad in (-1, 61, "soon"):
        response = client.get(f"/tasks/{task_id}", params={"wait": bad})
        assert response.status_code == 422 and response.json()["detail"][0]["msg"].startswith("wait:")


def _check_sweep_and_observables_examples(client: httpx.Client, readme: str, sweep: dict, observables: dict) -> None:
    """The README's sweep and observables examples answer what the README shows."""
    task = wait_done(client, client.post("/tasks", json=sweep).json()["task_id"])
    shown = [json.loads(e) for e in re.findall(r'\{"parameters": \{[^}]*\}, "counts": \{[^}]*\}\}', readme)]
    assert task["results"] == shown
    task = wait_done(client, client.post("/tasks", json=observables).json()["task_id"])
    found = re.search(r'"expectation_values": (\[[^\]]*\])', readme)
    assert found is not None
    values = json.loads(found.group(1))
    assert task["expectation_values"] == pytest.approx(values, abs=1e-9)


def _check_tags_example(client: httpx.Client, tagged: dict) -> None:
    """The README's tags example: the task is found by both its tags, and shows them."""
    task_id = client.post("/tasks", json=tagged).json()["task_id"]
    found = client.get("/tasks", params=[("tag", "project:vqe-h2"), ("tag", "run:7")]).json()["items"]
    assert task_id in [item["task_id"] for item in found]
    assert all(item["tags"] == {"project": "vqe-h2", "run": "7"} for item in found)


def _check_batch_example(client: httpx.Client, batch: dict) -> None:
    """The README's batch example: two tasks, in order, done together, with the counts it implies."""
    accepted = client.post("/batches", json=batch).json()
    done = client.get(f"/batches/{accepted['batch_id']}", params={"wait": 30}).json()
    assert done["total"] == 2 and done["states"] == {"completed": 2} and done["done"] is True
    tasks = client.get(f"/batches/{accepted['batch_id']}/tasks").json()["items"]
    assert [t["task_id"] for t in tasks] == accepted["task_ids"]
    assert [t["result"] for t in tasks] == [{"1": 10}, {"0": 10}]
