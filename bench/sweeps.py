"""Run what researchers run: a parameter sweep as one task, and exact expectation values.

A sweep of SWEEP_POINTS points through the service as one task (one Aer call with
`parameter_binds`), against the same points as that many separate tasks (parameters bound as
scalars, or the values written into the circuit text) and against the loop a user would write
(`assign_parameters` + `run` per point on one AerSimulator, the parse done once and not timed).
Then the expectation values of ten observables on a 12-qubit circuit, submit -> result through the
long-poll, against Aer's `EstimatorV2` called directly (and, for reference, what the worker does:
`AerSimulator` with `save_statevector`, the values taken by `Statevector.expectation_value`).
The service runs with its defaults: one worker, Aer on every core.
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


# The direct baselines live in one helper process (spawned, so this process never imports Qiskit),
# set up once by _set_up_baselines; each call below times one repeat there. The benchmark takes
# their samples in turn with the service's, so a neighbour's load on the shared cores falls on both.
_baseline: dict[str, Any] = {}


def _set_up_baselines(sweep_text: str, values: dict[str, list[float]], observable_text: str, paulis: list[str]) -> None:
    """Parse both circuits (not timed), build one AerSimulator and one EstimatorV2, warm each call."""
    from qiskit import qasm3
    from qiskit.quantum_info import SparsePauliOp
    from qiskit_aer import AerSimulator
    from qiskit_aer.primitives import EstimatorV2

    sweep = qasm3.loads(sweep_text)
    parameters = {parameter.name: parameter for parameter in sweep.parameters}
    _baseline.update(
        sweep=sweep,
        points=[{parameters[name]: column[i] for name, column in values.items()} for i in range(len(values["theta"]))],
        binds=[{parameters[name]: column for name, column in values.items()}],
        state=qasm3.loads(observable_text),
        operators=[SparsePauliOp(pauli) for pauli in paulis],
        simulator=AerSimulator(),
        estimator=EstimatorV2(),
    )
    _baseline["warm"] = [_estimator_call(), _state_vector_call()]
    _baseline["simulator"].run(sweep.assign_parameters(_baseline["points"][0]), shots=SHOTS).result()


def _naive_loop() -> float:
    """The user's own loop: assign_parameters + run + get_counts per point, on one AerSimulator."""
    sweep, simulator = _baseline["sweep"], _baseline["simulator"]
    started = time.perf_counter()
    for point in _baseline["points"]:
        simulator.run(sweep.assign_parameters(point), shots=SHOTS).result().get_counts()
    return time.perf_counter() - started


def _aer_one_call() -> float:
    """Aer alone, called as the worker calls it: one run with parameter_binds and the points side
    by side (max_parallel_experiments=0), get_counts per point."""
    started = time.perf_counter()
    result = (
        _baseline["simulator"]
        .run(_baseline["sweep"], shots=SHOTS, parameter_binds=_baseline["binds"], max_parallel_experiments=0)
        .result()
    )
    for index in range(len(_baseline["points"])):
        result.get_counts(index)
    return time.perf_counter() - started


def _estimator_call() -> tuple[float, list[float]]:
    """Aer's EstimatorV2 on the circuit and the observables: seconds and values."""
    started = time.perf_counter()
    evs = _baseline["estimator"].run([(_baseline["state"], _baseline["operators"])]).result()[0].data.evs
    return time.perf_counter() - started, [float(v) for v in evs]


def _state_vector_call() -> tuple[float, list[float]]:
    """What the worker does: AerSimulator on a copy of the circuit with save_statevector, then each
    observable's value from the state vector."""
    circuit, operators = _baseline["state"], _baseline["operators"]
    started = time.perf_counter()
    state = circuit.copy()
    state.save_statevector()
    vector = _baseline["simulator"].run(state, shots=1).result().data(0)["statevector"]
    values = [float(vector.expectation_value(operator).real) for operator in operators]
    return time.perf_counter() - started, values


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


def _sweeps(bench: ServiceBench, baseline: Any, values: dict[str, list[float]]) -> dict[str, Any]:
    """The sweep as one task, in turn with the naive loop and Aer's one call (medians of SWEEP_REPEATS
    each), then its points as separate tasks, both ways."""
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
    runs, loop, one_call = [], [], []
    client = Client(bench.cluster.base_url, timeout=600)
    with contextlib.closing(client):
        # Warm the worker's parsers and Aer on each kind of task before any timing.
        small = {name: column[:10] for name, column in values.items()}
        for payload in (as_scalars[0], as_text[0], {**sweep, "parameters": small}):
            assert client.wait_done(client.post(payload))["status"] == "completed"
        for _ in range(SWEEP_REPEATS):
            runs.append(_sweep_task(client, sweep, points))
            loop.append(baseline.apply(_naive_loop))
            one_call.append(baseline.apply(_aer_one_call))
    return {
        "sweep": {key: statistics.median(run[key] for run in runs) for key in runs[0]},
        "naive_loop_s": statistics.median(loop),
        "aer_one_call_s": statistics.median(one_call),
        "tasks_scalar_s": bench.complete_all(as_scalars),
        "tasks_text_s": bench.complete_all(as_text),
    }


def _observables(bench: ServiceBench, baseline: Any, text: str, paulis: list[str]) -> dict[str, Any]:
    """Submit -> result of the observables task sent to an idle worker, one at a time, in turn with
    the two direct calls (medians of OBSERVABLE_SAMPLES each); checks that all three agree."""
    estimate = {"circuit": text, "observables": paulis}
    service, simulate, estimator, save = [], [], [], []
    client = Client(bench.cluster.base_url)
    with contextlib.closing(client):
        for _ in range(3):  # warm the connection and the worker
            client.wait_done(client.post(estimate))
        for _ in range(OBSERVABLE_SAMPLES):
            time.sleep(0.02)  # let the worker go idle again, as the latency rows do
            started = time.perf_counter()
            body = client.wait_done(client.post(estimate))
            service.append(time.perf_counter() - started)
            assert body["status"] == "completed", body
            simulate.append(body["duration_ms"] / 1000)
            seconds, direct = baseline.apply(_estimator_call)
            estimator.append(seconds)
            seconds, saved = baseline.apply(_state_vector_call)
            save.append(seconds)
    for name, other in (("EstimatorV2", direct), ("the state vector", saved)):
        worst = max(abs(a - b) for a, b in zip(body["expectation_values"], other, strict=True))
        assert worst < VALUE_TOLERANCE, f"the service's expectation values differ from {name}'s by {worst}"
    ms = lambda values: statistics.median(values) * 1000  # noqa: E731
    return {
        "qubits": OBSERVABLE_QUBITS,
        "count": len(paulis),
        "service_ms": ms(service),
        "service_simulate_ms": ms(simulate),
        "estimator_ms": ms(estimator),
        "state_vector_ms": ms(save),
    }


def measure() -> dict[str, Any]:
    """Every figure of this part, measured now; the service with its defaults (one worker, Aer on
    every core), the direct baselines in a helper process beside it."""
    values = sweep_values(SWEEP_POINTS)
    paulis = observables(OBSERVABLE_QUBITS)
    observable_text = ansatz(OBSERVABLE_QUBITS, OBSERVABLE_LAYERS, seed=3)
    with multiprocessing.get_context("spawn").Pool(1) as helper, ServiceBench("sqlite", 1) as bench:
        # Set up by a call, not a pool initializer: an initializer that fails is retried forever.
        helper.apply(_set_up_baselines, (sweep_circuit(), values, observable_text, paulis))
        swept = _sweeps(bench, helper, values)
        estimated = _observables(bench, helper, observable_text, paulis)
    return {"points": SWEEP_POINTS, "shots": SHOTS, **swept, "observables": estimated}


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
        (
            "Aer alone in one process, called as the worker calls it: one `run` with `parameter_binds` "
            "(`max_parallel_experiments=0`) + `get_counts` per point",
            s["aer_one_call_s"],
        ),
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
        f"| `AerSimulator().run` with `save_statevector`, then `Statevector.expectation_value`, called directly | "
        f"{o['state_vector_ms']:.1f} |",
    ]
    return lines
