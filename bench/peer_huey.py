"""The peer: huey with SqliteHuey running the same parse + run as a task (installed for the benchmark only).

`huey_consumer bench.peer_huey.huey -w N -k process` serves it; HUEY_DB names the database file.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from huey import SqliteHuey

from bench.raw import SHOTS

huey = SqliteHuey(filename=os.environ.get("HUEY_DB", "huey-bench.db"))
_simulator = None


@huey.task()
def run_circuit(circuit: str, shots: int) -> dict[str, int]:
    global _simulator
    from qiskit import qasm3
    from qiskit_aer import AerSimulator

    if _simulator is None:
        _simulator = AerSimulator()
    return _simulator.run(qasm3.loads(circuit), shots=shots).result().get_counts()


class HueyBench:
    """A huey consumer with N worker processes on a fresh SQLite file; defaults as a user would run it."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.db = Path(tempfile.mkdtemp(prefix="huey-bench-")) / "huey.db"

    def __enter__(self) -> "HueyBench":
        os.environ["HUEY_DB"] = str(self.db)
        huey.storage.filename = str(self.db)
        consumer = [sys.executable, "-m", "huey.bin.huey_consumer", "bench.peer_huey.huey", "-w", str(self.workers),
                    "-k", "process", "-q"]
        self.process = subprocess.Popen(consumer, env={**os.environ, "HUEY_DB": str(self.db)},
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from bench.circuits import BELL

        run_circuit(BELL, 16).get(blocking=True, timeout=120)  # the consumer is up and warm
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(30)

    def throughput(self, circuit: str, count: int) -> float:
        started = time.perf_counter()
        results = [run_circuit(circuit, SHOTS) for _ in range(count)]
        for result in results:
            assert result.get(blocking=True, timeout=300)
        return count / (time.perf_counter() - started)

    def latency(self, circuit: str, count: int) -> list[float]:
        samples = []
        for _ in range(count):
            time.sleep(0.02)
            started = time.perf_counter()
            run_circuit(circuit, SHOTS).get(blocking=True, timeout=120)
            samples.append(time.perf_counter() - started)
        return samples


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000
