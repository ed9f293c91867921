"""Run the peer (huey, installed for the benchmark only) with defaults, as a user would."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.circuits import BELL
from bench.raw import SHOTS


class HueyBench:
    """A huey consumer with N worker processes on a fresh SQLite file."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.db = Path(tempfile.mkdtemp(prefix="huey-bench-")) / "huey.db"

    def __enter__(self) -> HueyBench:
        os.environ["HUEY_DB"] = str(self.db)
        module = importlib.reload(importlib.import_module("bench.peer_huey"))
        self.task: Any = module.run_circuit
        consumer = [
            sys.executable,
            "-m",
            "huey.bin.huey_consumer",
            "bench.peer_huey.huey",
            "-w",
            str(self.workers),
            "-k",
            "process",
            "-q",
        ]
        self.process = subprocess.Popen(consumer, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.task(BELL, 16).get(blocking=True, timeout=120)  # the consumer is up and warm
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(30)

    def throughput(self, circuit: str, count: int) -> float:
        started = time.perf_counter()
        results = [self.task(circuit, SHOTS) for _ in range(count)]
        for result in results:
            assert result.get(blocking=True, timeout=300)
        return count / (time.perf_counter() - started)

    def latency(self, circuit: str, count: int) -> list[float]:
        samples = []
        for _ in range(count):
            time.sleep(0.02)
            started = time.perf_counter()
            self.task(circuit, SHOTS).get(blocking=True, timeout=120)
            samples.append(time.perf_counter() - started)
        return samples
