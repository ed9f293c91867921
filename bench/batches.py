"""Many circuits as a few batches: POST /batches, the batch long-poll, then every result read back."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.circuits import numbered
from bench.service import LONG_POLL_SECONDS, Client, ServiceBench, cpu_by_role

PAGE = 500  # the largest page GET /batches/{id}/tasks gives


def run_batch(base_url: str, circuit: str, size: int, shots: int, first: int) -> str:
    """Submit one batch (its circuits numbered from `first`) and long-poll it until done; its id."""
    client = Client(base_url)
    try:
        tasks = [{"circuit": numbered(circuit, first + i), "shots": shots} for i in range(size)]
        batch_id = str(client.request("POST", "/batches", {"tasks": tasks}, expect=202)["batch_id"])
        while not client.request("GET", f"/batches/{batch_id}?wait={LONG_POLL_SECONDS}")["done"]:
            pass
        return batch_id
    finally:
        client.close()


def read_results(base_url: str, batch_id: str) -> int:
    """Page through a finished batch's tasks; how many completed."""
    client = Client(base_url)
    completed, cursor = 0, ""
    try:
        while True:
            page = client.request("GET", f"/batches/{batch_id}/tasks?limit={PAGE}{cursor}")
            completed += sum(task["status"] == "completed" for task in page["items"])
            if not page.get("next_cursor"):
                return completed
            cursor = f"&cursor={page['next_cursor']}"
    finally:
        client.close()


def measure(bench: ServiceBench, circuit: str, batches: int, size: int, shots: int = 1024) -> dict[str, Any]:
    """Tasks per second from the first POST to the last batch done, the results read back after, and
    the CPU each role of the service spent per task meanwhile."""
    with cpu_by_role(bench, batches * size) as cpu:
        started = time.perf_counter()
        with ThreadPoolExecutor(batches) as pool:
            batch_ids = list(
                pool.map(lambda b: run_batch(bench.cluster.base_url, circuit, size, shots, b * size), range(batches))
            )
        elapsed = time.perf_counter() - started
    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        completed = sum(pool.map(lambda b: read_results(bench.cluster.base_url, b), batch_ids))
    reading = time.perf_counter() - started
    assert completed == batches * size, f"{completed} of {batches * size} tasks completed"
    return {
        "tasks": batches * size,
        "throughput": batches * size / elapsed,
        "results_read_per_s": batches * size / reading,
        "cpu_ms_per_task": cpu.result,
    }
