"""`make bench`: every figure measured in this one run on this machine, printed as one table.

Writes bench/results/<UTC time>.json and bench/results/latest.{json,md}.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import api_load, batches, fair_share, history, raw, sweeps
from bench.circuits import BELL, HEAVY
from bench.peer import HueyBench
from bench.service import ServiceBench, backends, percentile
from harness.databases import FreshDatabase

RESULTS = Path(__file__).parent / "results"
THROUGHPUT_TASKS = int(os.environ.get("BENCH_TASKS", "1000"))
LATENCY_SAMPLES = int(os.environ.get("BENCH_LATENCY_SAMPLES", "100"))
HEAVY_REPEATS = int(os.environ.get("BENCH_HEAVY_REPEATS", "3"))
BATCHES = int(os.environ.get("BENCH_BATCHES", "10"))
BATCH_SIZE = int(os.environ.get("BENCH_BATCH_SIZE", "1000"))


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def latency_summary(samples: list[float], raw_ms: float) -> dict[str, float]:
    ms = [s * 1000 for s in samples]
    return {
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "p99_ms": percentile(ms, 99),
        "overhead_p50_ms": percentile(ms, 50) - raw_ms,
        "overhead_p99_ms": percentile(ms, 99) - raw_ms,
    }


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main() -> int:
    report: dict[str, Any] = {"started": datetime.now(UTC).isoformat(), "machine": machine()}
    n = THROUGHPUT_TASKS

    only = set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))
    if only:  # for working on one part; the full run is what `make bench` reports
        return partial(only, n)
    log("raw loops")
    report["raw"] = {
        "naive_1proc": raw.loop_rate("naive", BELL, n, 1),
        "naive_2proc": raw.loop_rate("naive", BELL, n, 2, threads=1),
        "service_path_1proc": raw.loop_rate("service", BELL, n, 1),
        "service_path_2proc_1thread": raw.loop_rate("service", BELL, n, 2, threads=1),
    }
    raw_single_ms = 1000 / report["raw"]["service_path_1proc"]

    # The service as `make run` starts it: its own defaults (threads, claims), no tuning.
    report["service"] = {}
    report["batches"] = {}
    for backend in backends():
        for workers in (1, 2):
            log(f"service on {backend}, {workers} worker(s)")
            with ServiceBench(backend, workers) as bench:
                rate = bench.throughput(BELL, n)
                cpu = bench.cpu_ms_per_task
                latency = latency_summary(bench.latency(BELL, LATENCY_SAMPLES), raw_single_ms)
                if workers == 2:
                    log(f"batches on {backend}: {BATCHES} of {BATCH_SIZE} tasks")
                    report["batches"][backend] = batches.measure(bench, BELL, BATCHES, BATCH_SIZE)
            report["service"][f"{backend}_{workers}w"] = {"throughput": rate, "cpu_ms_per_task": cpu, **latency}

    report["history"] = {}
    for backend in backends():
        log(f"history on {backend}: {history.HISTORY:,} finished tasks against none")
        report["history"][backend] = history.measure(backend)

    report["fair_share"] = {}
    for backend in backends():
        log(f"fair share on {backend}: claims among {fair_share.KEYS} keys against one, {fair_share.QUEUED:,} queued")
        report["fair_share"][backend] = fair_share.measure(backend)

    report["huey"] = {}
    for consumers in (1, 2):
        log(f"huey, {consumers} consumer process(es)")
        with HueyBench(consumers) as bench:
            rate = bench.throughput(BELL, n)
            latency = latency_summary(bench.latency(BELL, LATENCY_SAMPLES), raw_single_ms)
        report["huey"][f"{consumers}c"] = {"throughput": rate, **latency}

    report["api"] = {}
    for backend in backends():
        log(f"API alone under wrk, {backend}")
        database = FreshDatabase(Path(tempfile.mkdtemp()), backend)
        try:
            report["api"][backend] = api_load.measure(database.settings())
        finally:
            database.drop()

    log("heavy circuits: raw split")
    report["heavy_raw"] = {name: raw.heavy_split(text, HEAVY_REPEATS) for name, text in HEAVY.items()}
    log("heavy circuits: through the service (1 worker, all cores)")
    with ServiceBench("sqlite", 1) as bench:
        report["heavy_service"] = {name: bench.split(text, HEAVY_REPEATS) for name, text in HEAVY.items()}

    log("sweeps and observables")
    report["sweeps"] = sweeps.measure()

    report["targets"] = targets(report)
    report["finished"] = datetime.now(UTC).isoformat()
    table = render(report)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for path in (RESULTS / f"{stamp}.json", RESULTS / "latest.json"):
        path.write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "latest.md").write_text(table + "\n")
    log(f"wrote {RESULTS / (stamp + '.json')}")
    return 0


def partial(only: set[str], n: int) -> int:
    if "batches" in only:
        for backend in backends():
            with ServiceBench(backend, 2) as bench:
                measured = batches.measure(bench, BELL, BATCHES, BATCH_SIZE)
            print(backend, json.dumps(measured, indent=1))
        print("raw service path, 2 processes:", raw.loop_rate("service", BELL, n, 2, threads=1))
        print("naive, 1 process:", raw.loop_rate("naive", BELL, n, 1))
    if "fair_share" in only:
        for backend in backends():
            measured = fair_share.measure(backend)
            print(backend, json.dumps(measured, indent=1), fair_share.ratio(measured))
    if "history" in only:
        for backend in backends():
            measured = history.measure(backend)
            print(backend, json.dumps(measured, indent=1), history.ratios(measured))
    if "service" in only:
        for backend in backends():
            for workers in (1, 2):
                with ServiceBench(backend, workers) as bench:
                    rate = bench.throughput(BELL, n)
                    lat = latency_summary(bench.latency(BELL, LATENCY_SAMPLES), 0.0)
                print(f"{backend} {workers}w: {rate:.0f}/s, p50 {lat['p50_ms']:.1f} p99 {lat['p99_ms']:.1f} ms")
    if "sweeps" in only:
        measured = sweeps.measure()
        print("\n".join(sweeps.render(measured)))
        for name, value, op, goal in sweeps.targets(measured):
            print(f"{name}: {value:.3f} (goal {op} {goal:g})")
    if "heavy" in only:
        with ServiceBench("sqlite", 1) as bench:
            for name, text in HEAVY.items():
                print(name, {k: round(v, 1) for k, v in bench.split(text, HEAVY_REPEATS).items()})
    return 0


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    two = r["service"]["sqlite_2w"]
    one = r["service"]["sqlite_1w"]
    api = r["api"]["sqlite"]
    rows = [
        (
            "Bell throughput, 2 workers / naive raw loop (1 process)",
            two["throughput"] / r["raw"]["naive_1proc"],
            ">=",
            2.0,
        ),
        (
            "Bell throughput, 2 workers / huey, 2 consumers",
            two["throughput"] / r["huey"]["2c"]["throughput"],
            ">=",
            3.0,
        ),
        ("idle latency overhead p50 (ms), 1 worker, defaults", one["overhead_p50_ms"], "<=", 5.0),
        ("idle latency overhead p99 (ms), 1 worker, defaults", one["overhead_p99_ms"], "<=", 20.0),
        ("idle latency overhead p50 (ms), 2 workers, defaults", two["overhead_p50_ms"], "<=", 5.0),
        ("idle latency overhead p99 (ms), 2 workers, defaults", two["overhead_p99_ms"], "<=", 20.0),
        (
            f"{BATCHES} batches of {BATCH_SIZE:,} Bell tasks, 2 workers / raw loop, worker's code path, 2 processes",
            r["batches"]["sqlite"]["throughput"] / r["raw"]["service_path_2proc_1thread"],
            ">=",
            0.8,
        ),
        (
            # Issue 12's "naive raw loop": the one-process loop, as in the per-task row above.
            f"{BATCHES} batches of {BATCH_SIZE:,} Bell tasks, 2 workers / naive raw loop (1 process)",
            r["batches"]["sqlite"]["throughput"] / r["raw"]["naive_1proc"],
            ">=",
            2.0,
        ),
        ("POST /tasks / minimal FastAPI + SQLite insert", api["service_post"] / api["minimal_post"], ">=", 0.8),
        ("GET /tasks/{id} / minimal FastAPI + SQLite read", api["service_get"] / api["minimal_get"], ">=", 0.8),
    ]
    for name in ("QFT-20", "1,000 gates, 16 qubits"):
        # qasm3.loads in the raw loop against the parse time the service recorded for the same text.
        speedup = r["heavy_raw"][name]["parse_ms"] / r["heavy_service"][name]["parse_ms"]
        rows.append((f"{name}: parse speed-up over qasm3.loads", speedup, ">=", 10.0))
    big = r["heavy_service"]["random, 22 qubits"]
    overhead = (big["total_ms"] - big["simulate_ms"]) / big["total_ms"] * 100
    rows.append(("random 22 qubits: queue overhead, % of total", overhead, "<=", 2.0))
    for backend, measured in r["history"].items():
        for key, ratio in history.ratios(measured).items():
            what = "submissions" if key == "submit_per_s" else "claims"
            rows.append(
                (f"{what}/s with {measured['history']:,} finished tasks / empty table, {backend}", ratio, ">=", 0.8)
            )
    for backend, measured in r["fair_share"].items():
        rows.append(
            (
                f"claims/s, {measured['keys']} keys x {measured['queued'] // measured['keys']:,} queued "
                f"/ one key's {measured['queued']:,}, {backend}",
                fair_share.ratio(measured),
                ">=",
                0.5,
            )
        )
    rows += sweeps.targets(r["sweeps"])
    out = []
    for name, value, op, goal in rows:
        met = value >= goal if op == ">=" else value <= goal
        out.append({"target": name, "value": round(value, 3), "goal": f"{op} {goal:g}", "met": met})
    return out


def render(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        f"Measured {r['started'][:16]}Z on {m['cpus']} cores, {m['memory_gib']} GiB, Python {m['python']}; "
        f"Bell circuit, 1024 shots, {THROUGHPUT_TASKS} tasks for throughput, {LATENCY_SAMPLES} for latency.",
        "",
        "| what | Bell/s | latency p50 / p95 / p99 (ms) |",
        "| --- | ---: | --- |",
        f"| raw loop, `qasm3.loads` + run, 1 process | {r['raw']['naive_1proc']:.0f} | |",
        f"| raw loop, `qasm3.loads` + run, 2 processes, 1 Aer thread each | {r['raw']['naive_2proc']:.0f} | |",
        f"| raw loop, the worker's code path, 1 process | {r['raw']['service_path_1proc']:.0f} | |",
        f"| raw loop, the worker's code path, 2 processes, 1 Aer thread each | "
        f"{r['raw']['service_path_2proc_1thread']:.0f} | |",
    ]
    for key, row in r["service"].items():
        backend, workers = key.split("_")
        name = {"sqlite": "SQLite", "postgres": "PostgreSQL"}[backend]
        lines.append(
            f"| **this service**, {name}, {workers[:-1]} worker(s), one task per POST, over HTTP | "
            f"{row['throughput']:.0f} | {row['p50_ms']:.1f} / {row['p95_ms']:.1f} / {row['p99_ms']:.1f} |"
        )
    for backend, row in r["batches"].items():
        name = {"sqlite": "SQLite", "postgres": "PostgreSQL"}[backend]
        lines.append(
            f"| **this service**, {name}, 2 workers, {BATCHES} batches of {BATCH_SIZE:,} (batch long-poll; "
            f"results then read back at {row['results_read_per_s']:.0f}/s) | {row['throughput']:.0f} | |"
        )
    for key, row in r["huey"].items():
        lines.append(
            f"| huey (SqliteHuey), {key[:-1]} consumer process(es) | {row['throughput']:.0f} | "
            f"{row['p50_ms']:.1f} / {row['p95_ms']:.1f} / {row['p99_ms']:.1f} |"
        )
    lines += [
        "",
        "| CPU per Bell task during the throughput runs (ms) | API | worker loops | simulations | benchmark client |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for key, row in r["service"].items():
        c = row["cpu_ms_per_task"]
        lines.append(
            f"| {key.replace('_', ', ').replace('w', ' worker(s)')} | {c['api']:.2f} | {c['worker']:.2f} | "
            f"{c['simulation']:.2f} | {c['benchmark client']:.2f} |"
        )
    for backend, row in r["batches"].items():
        c = row["cpu_ms_per_task"]
        lines.append(
            f"| {backend}, 2 workers, batches | {c['api']:.2f} | {c['worker']:.2f} | "
            f"{c['simulation']:.2f} | {c['benchmark client']:.2f} |"
        )
    lines += [
        "",
        "| history (through the store, 2,000 each) | submissions/s, empty / full | claims/s, empty / full |",
        "| --- | ---: | ---: |",
    ]
    for backend, h in r["history"].items():
        lines.append(
            f"| {backend}, {h['history']:,} finished tasks | {h['empty']['submit_per_s']:.0f} / "
            f"{h['full']['submit_per_s']:.0f} | {h['empty']['claim_per_s']:.0f} / {h['full']['claim_per_s']:.0f} |"
        )
    lines += [
        "",
        "| fair share (through the store, 2,000 claims) | claims/s, one key | claims/s, 100 keys |",
        "| --- | ---: | ---: |",
    ]
    for backend, f in r["fair_share"].items():
        lines.append(f"| {backend}, {f['queued']:,} queued | {f['one_key']:.0f} | {f['many_keys']:.0f} |")
    lines += ["", "| API alone (wrk, 2 threads, 16 connections) | POST req/s | GET req/s |", "| --- | ---: | ---: |"]
    for backend, row in r["api"].items():
        lines.append(f"| this service's API, {backend} | {row['service_post']:.0f} | {row['service_get']:.0f} |")
    first = next(iter(r["api"].values()))
    lines.append(f"| minimal FastAPI + SQLite app | {first['minimal_post']:.0f} | {first['minimal_get']:.0f} |")
    lines += [
        "",
        "| heavy circuit (medians, ms) | queue wait | parse | transpile | simulate | total "
        "| naive: parse / transpile / simulate / total |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, s in r["heavy_service"].items():
        h = r["heavy_raw"][name]
        lines.append(
            f"| {name} | {s['queue_wait_ms']:.1f} | {s['parse_ms']:.1f} | {s['transpile_ms']:.1f} | "
            f"{s['simulate_ms']:.1f} | {s['total_ms']:.1f} | {h['parse_ms']:.1f} / {h['transpile_ms']:.1f} / "
            f"{h['simulate_ms']:.1f} / {h['total_ms']:.1f} |"
        )
    lines += ["", *sweeps.render(r["sweeps"])]
    lines += ["", "| target | measured | goal | met |", "| --- | ---: | --- | --- |"]
    for t in r["targets"]:
        lines.append(f"| {t['target']} | {t['value']:g} | {t['goal']} | {'yes' if t['met'] else '**no**'} |")
    identical = all(h["identical_circuit"] for h in r["heavy_raw"].values())
    lines.append("")
    lines.append(f"The service's parser gave circuits identical to `qasm3.loads` for every heavy circuit: {identical}.")
    two_naive = r["batches"]["sqlite"]["throughput"] / r["raw"]["naive_2proc"]
    lines.append(f"The batches against the naive raw loop in 2 processes (no goal): {two_naive:.2f}x.")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
