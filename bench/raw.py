"""The raw limit: parse + run in a plain Python loop, no queue at all."""

from __future__ import annotations

import multiprocessing
import statistics
import time
from typing import Any

from bench.circuits import numbered

SHOTS = 1024


def _naive(circuit: str, count: int, threads: int) -> float:
    """What a user would write: qiskit.qasm3.loads + AerSimulator.run, one circuit at a time."""
    from qiskit import qasm3
    from qiskit_aer import AerSimulator

    options = {"max_parallel_threads": threads} if threads else {}
    simulator = AerSimulator(**options)
    simulator.run(qasm3.loads(circuit), shots=SHOTS).result()  # warm up
    started = time.perf_counter()
    for n in range(count):
        simulator.run(qasm3.loads(numbered(circuit, n)), shots=SHOTS).result().get_counts()
    return time.perf_counter() - started


def _service_path(circuit: str, count: int, threads: int) -> float:
    """The worker's own code path (worker.executor) in a loop: parse with checks, run, describe."""
    from worker import executor

    simulator = executor.Simulator(max_memory_mb=4096, threads=threads)
    executor.execute(simulator, circuit, SHOTS, None)
    started = time.perf_counter()
    for n in range(count):
        reply = executor.execute(simulator, numbered(circuit, n), SHOTS, None)
        assert reply.counts, reply.error
    return time.perf_counter() - started


def _run(args: tuple[str, str, int, int]) -> float:
    kind, circuit, count, threads = args
    return (_naive if kind == "naive" else _service_path)(circuit, count, threads)


def loop_rate(kind: str, circuit: str, count: int, processes: int, threads: int = 0) -> float:
    """Circuits per second of `processes` loops running side by side, each timed after its warm-up."""
    per_process = count // processes
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        elapsed = pool.map(_run, [(kind, circuit, per_process, threads)] * processes, chunksize=1)
    return per_process * processes / max(elapsed)


def _exact(circuit: Any) -> list[tuple[Any, ...]]:
    """Instructions with parameter types and reprs, so a drifted float or 1 for 1.0 counts as a difference."""
    return [
        (
            i.operation.name,
            [(type(p).__name__, repr(p)) for p in i.operation.params],
            [circuit.find_bit(q).index for q in i.qubits],
            [circuit.find_bit(c).index for c in i.clbits],
        )
        for i in circuit.data
    ]


def _heavy_split(circuit: str, repeats: int) -> dict[str, Any]:
    from qiskit import qasm3, transpile
    from qiskit_aer import AerSimulator

    from worker import parsing

    simulator = AerSimulator()
    parse, fast_parse, transpiled, run = [], [], [], []
    identical = True
    for n in range(repeats):
        text = numbered(circuit, n)  # as the service is sent it (see bench.service.split)
        t0 = time.perf_counter()
        parsed = qasm3.loads(text)
        t1 = time.perf_counter()
        native = transpile(parsed, simulator)
        t2 = time.perf_counter()
        simulator.run(native, shots=SHOTS, seed_simulator=1).result().get_counts()
        t3 = time.perf_counter()
        fast = parsing.parse(text)
        t4 = time.perf_counter()
        identical = identical and _exact(fast) == _exact(parsed)
        parse.append(t1 - t0)
        transpiled.append(t2 - t1)
        run.append(t3 - t2)
        fast_parse.append(t4 - t3)
    ms = lambda values: statistics.median(values) * 1000  # noqa: E731
    return {
        "parse_ms": ms(parse),
        "transpile_ms": ms(transpiled),
        "simulate_ms": ms(run),
        "total_ms": ms(parse) + ms(transpiled) + ms(run),
        "service_parse_ms": ms(fast_parse),
        "identical_circuit": identical,
    }


def heavy_split(circuit: str, repeats: int) -> dict[str, Any]:
    """The naive path for a heavy circuit, split into parse, transpile and simulate (medians)."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(_heavy_split, (circuit, repeats))
