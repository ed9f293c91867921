"""Run what researchers run: a parameter sweep as one task, and exact expectation values.

A sweep of SWEEP_POINTS points through the service as one task (one Aer call with
`parameter_binds`), against the same points as that many separate tasks (parameters bound as
scalars, or the values written into the circuit text) and against the loop a user would write
(`assign_parameters` + `run` per point on one AerSimulator, the parse done once and not timed).
Then the expectation values of ten observables on a 12-qubit circuit, submit -> result through the
long-poll, against Aer's `EstimatorV2` called directly (and, for reference, `AerSimulator` with
`save_expectation_value`, which is what the worker does). The service runs with its defaults:
one worker, Aer on every core.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import statistics
import time
from typing import Any

from bench.circuits import ansatz, observables, sweep_circuit
from bench.service import Client, ServiceBench, epoch_seconds

SWEEP_POINTS = int(os.environ.get("BENCH_SWEEP_POINTS", "1000"))
SWEEP_REPEATS = int(os.environ.get("BENCH_SWEEP_REPEATS", "3"))
SHOTS = 1024
OBSERVABLE_QUBITS = 12
OBSERVABLE_LAYERS = 4
OBSERVABLE_SAMPLES = int(os.environ.get("BENCH_OBSERVABLE_SAMPLES", "20"))
# The service's values against the estimator's: both are exact, so only float rounding differs.
VALUE_TOLERANCE = 1e-9


def sweep_values(points: int) -> dict[str, list[float]]:
    """theta once round the circle, phi back and forth across it, one value of each per point."""
    return {
        "theta": [2 * math.pi * i / points for i in range(points)],
        "phi": [math.pi * math.cos(7 * math.pi * i / points) for i in range(points)],
    }


def _naive_sweep(text: str, values: dict[str, list[float]], repeats: int) -> dict[str, list[float]]:
    """The user's own loop, and Aer's one call with parameter_binds, in a fresh process: seconds per repeat."""
    from qiskit import qasm3
    from qiskit_aer import AerSimulator

    circuit = qasm3.loads(text)  # parsed once, not timed
    parameters = {parameter.name: parameter for parameter in circuit.parameters}
    points = len(values["theta"])
    simulator = AerSimulator()
    simulator.run(circuit.assign_parameters({parameters[n]: v[0] for n, v in values.items()}), shots=SHOTS).result()
    loop, one_call = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        for i in range(points):
            bound = circuit.assign_parameters({parameters[name]: column[i] for name, column in values.items()})
            simulator.run(bound, shots=SHOTS).result().get_counts()
        loop.append(time.perf_counter() - started)
    binds = [{parameters[name]: column for name, column in values.items()}]
    for _ in range(repeats):
        started = time.perf_counter()
        result = simulator.run(circuit, shots=SHOTS, parameter_binds=binds).result()
        for i in range(points):
            result.get_counts(i)
        one_call.append(time.perf_counter() - started)
    return {"loop": loop, "one_call": one_call}


def _direct_estimates(text: str, paulis: list[str], samples: int) -> dict[str, Any]:
    """Aer's EstimatorV2, and AerSimulator with save_expectation_value, called directly in a fresh
    process on the parsed circuit (the parse is not timed): wall time of each call in seconds."""
    from qiskit import qasm3
    from qiskit.quantum_info import SparsePauliOp
    from qiskit_aer import AerSimulator
    from qiskit_aer.primitives import EstimatorV2

    circuit = qasm3.loads(text)
    operators = [SparsePauliOp(pauli) for pauli in paulis]
    estimator = EstimatorV2()
    simulator = AerSimulator()
    qubits = list(range(circuit.num_qubits))

    def estimate() -> list[float]:
        return [float(v) for v in estimator.run([(circuit, operators)]).result()[0].data.evs]

    def save_and_run() -> list[float]:
        state = circuit.copy()
        for index, operator in enumerate(operators):
            state.save_expectation_value(operator, qubits, label=f"ev{index}")
        data = simulator.run(state, shots=1).result().data(0)
        return [float(data[f"ev{index}"].real) for index in range(len(operators))]

    timings: dict[str, Any] = {}
    for name, call in (("estimator", estimate), ("save_expectation_value", save_and_run)):
        timings[f"{name}_values"] = call()  # warm-up
        seconds = []
        for _ in range(samples):
            started = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - started)
        timings[name] = seconds
    return timings


def _in_fresh_process(function: Any, *args: Any) -> Any:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)


def _sweep_task(client: Client, payload: dict[str, Any], points: int) -> dict[str, float]:
    """One sweep task, submit -> result through the long-poll, and how its time splits."""
    started = time.perf_counter()
    body = client.wait_done(client.post(payload))
    total = time.perf_counter() - started
    assert body["status"] == "completed", body
    results = body["results"]
    assert len(results) == points and all(sum(r["counts"].values()) == SHOTS for r in results), body["id"]
    wait = epoch_seconds(body["started_at"]) - epoch_seconds(body["created_at"])
    return {
        "total_s": total,
        "queue_wait_s": wait,
        "parse_s": body["parse_ms"] / 1000,
        "simulate_s": body["duration_ms"] / 1000,
        "answer_bytes": client.last_answer_bytes,
    }


def _sweeps_through_service(bench: ServiceBench, values: dict[str, list[float]]) -> dict[str, Any]:
    """The sweep as one task (median of SWEEP_REPEATS), then its points as separate tasks, both ways."""
    points = len(values["theta"])
    sweep_text = sweep_circuit()
    sweep = {"circuit": sweep_text, "shots": SHOTS, "parameters": values}
    as_scalars = [
        {"circuit": sweep_text, "shots": SHOTS, "parameters": {name: column[i] for name, column in values.items()}}
        for i in range(points)
    ]
    as_text = [
        {"circuit": sweep_circuit((values["theta"][i], values["phi"][i])), "shots": SHOTS} for i in range(points)
    ]
    client = Client(bench.cluster.base_url, timeout=600)
    with contextlib.closing(client):
        # Warm the worker's parsers and Aer on each kind of task before any timing.
        small = {name: column[:10] for name, column in values.items()}
        for payload in (as_scalars[0], as_text[0], {**sweep, "parameters": small}):
            assert client.wait_done(client.post(payload))["status"] == "completed"
        runs = [_sweep_task(client, sweep, points) for _ in range(SWEEP_REPEATS)]
    return {
        "sweep": {key: statistics.median(run[key] for run in runs) for key in runs[0]},
        "tasks_scalar_s": bench.complete_all(as_scalars),
        "tasks_text_s": bench.complete_all(as_text),
    }


def _observables_through_service(bench: ServiceBench, text: str, paulis: list[str]) -> dict[str, Any]:
    """Submit -> result of the observables task sent to an idle worker, one at a time (medians)."""
    estimate = {"circuit": text, "observables": paulis}
    seconds, simulate_ms = [], []
    client = Client(bench.cluster.base_url)
    with contextlib.closing(client):
        for _ in range(3):  # warm the connection and the worker
            body = client.wait_done(client.post(estimate))
        for _ in range(OBSERVABLE_SAMPLES):
            time.sleep(0.02)  # let the worker go idle again, as the latency rows do
            started = time.perf_counter()
            body = client.wait_done(client.post(estimate))
            seconds.append(time.perf_counter() - started)
            assert body["status"] == "completed", body
            simulate_ms.append(body["duration_ms"])
    return {
        "service_ms": statistics.median(seconds) * 1000,
        "service_simulate_ms": statistics.median(simulate_ms),
        "values": body["expectation_values"],
    }


def measure() -> dict[str, Any]:
    """Every figure of this part, measured now."""
    values = sweep_values(SWEEP_POINTS)
    paulis = observables(OBSERVABLE_QUBITS)
    observable_text = ansatz(OBSERVABLE_QUBITS, OBSERVABLE_LAYERS, seed=3)
    naive = _in_fresh_process(_naive_sweep, sweep_circuit(), values, SWEEP_REPEATS)
    direct = _in_fresh_process(_direct_estimates, observable_text, paulis, OBSERVABLE_SAMPLES)
    with ServiceBench("sqlite", 1) as bench:  # the service's defaults: one worker, Aer on every core
        swept = _sweeps_through_service(bench, values)
        estimated = _observables_through_service(bench, observable_text, paulis)
    service_values = estimated.pop("values")
    for name in ("estimator_values", "save_expectation_value_values"):
        worst = max(abs(a - b) for a, b in zip(service_values, direct[name], strict=True))
        assert worst < VALUE_TOLERANCE, f"the service's expectation values differ from {name} by {worst}"
    return {
        "points": SWEEP_POINTS,
        "shots": SHOTS,
        **swept,
        "naive_loop_s": statistics.median(naive["loop"]),
        "aer_one_call_s": statistics.median(naive["one_call"]),
        "observables": {
            "qubits": OBSERVABLE_QUBITS,
            "count": len(paulis),
            **estimated,
            "estimator_ms": statistics.median(direct["estimator"]) * 1000,
            "save_expectation_value_ms": statistics.median(direct["save_expectation_value"]) * 1000,
        },
    }


def targets(s: dict[str, Any]) -> list[tuple[str, float, str, float]]:
    """(name, measured, op, goal) rows for the report's target table."""
    n, one = s["points"], s["sweep"]["total_s"]
    separate = min(s["tasks_scalar_s"], s["tasks_text_s"])
    o = s["observables"]
    return [
        (f"sweep of {n:,} points: {n:,} separate tasks (the faster way) / one sweep task", separate / one, ">=", 20.0),
        (
            f"sweep of {n:,} points: naive loop (assign_parameters + run) / one sweep task",
            s["naive_loop_s"] / one,
            ">=",
            1.5,
        ),
        (
            f"{o['count']} observables, {o['qubits']} qubits: service end to end / Aer EstimatorV2 direct",
            o["service_ms"] / o["estimator_ms"],
            "<=",
            1.2,
        ),
    ]


def render(s: dict[str, Any]) -> list[str]:
    """The two tables of this part, as markdown lines."""
    n, one = s["points"], s["sweep"]
    sweep_s = one["total_s"]
    rest = one["total_s"] - one["queue_wait_s"] - one["parse_s"] - one["simulate_s"]
    rows = [
        (
            f"**one sweep task** through the service (simulate {one['simulate_s']:.2f} s, parse "
            f"{one['parse_s'] * 1000:.1f} ms, queue wait {one['queue_wait_s'] * 1000:.1f} ms, the rest {rest:.2f} s; "
            f"answer {one['answer_bytes'] / 1000:.0f} kB)",
            sweep_s,
        ),
        (f"{n:,} tasks through the service, parameters bound as scalars", s["tasks_scalar_s"]),
        (f"{n:,} tasks through the service, values written into the circuit text", s["tasks_text_s"]),
        ("naive loop in one process: `assign_parameters` + `run` per point, one AerSimulator", s["naive_loop_s"]),
        ("Aer alone in one process: one `run` with `parameter_binds` + `get_counts` per point", s["aer_one_call_s"]),
    ]
    lines = [
        f"| sweep: 4 qubits, 2 parameters, {n:,} points, {s['shots']} shots | total (s) | per point (ms) "
        "| time / one sweep task |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, seconds in rows:
        lines.append(f"| {name} | {seconds:.2f} | {seconds / n * 1000:.2f} | {seconds / sweep_s:.2f} |")
    o = s["observables"]
    lines += [
        "",
        f"| {o['count']} observables, {o['qubits']} qubits, exact (medians) | ms |",
        "| --- | ---: |",
        f"| **this service**, submit -> result through the long-poll (of which simulating: "
        f"{o['service_simulate_ms']:.1f}) | {o['service_ms']:.1f} |",
        f"| Aer `EstimatorV2().run([(circuit, observables)])`, called directly | {o['estimator_ms']:.1f} |",
        f"| `AerSimulator().run` of the circuit with `save_expectation_value`, called directly | "
        f"{o['save_expectation_value_ms']:.1f} |",
    ]
    return lines
