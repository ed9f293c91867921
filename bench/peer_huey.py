"""The peer's task module: huey with SqliteHuey running the same parse + run as a task.

`huey_consumer bench.peer_huey.huey -w N -k process` serves it; HUEY_DB names the database
file and must be set before this module is imported (bench.peer does that).
"""

from __future__ import annotations

import os

from huey import SqliteHuey

huey = SqliteHuey(filename=os.environ["HUEY_DB"])
_simulator = None


@huey.task()
def run_circuit(circuit: str, shots: int) -> dict[str, int]:
    global _simulator
    from qiskit import qasm3
    from qiskit_aer import AerSimulator

    if _simulator is None:
        _simulator = AerSimulator()
    return _simulator.run(qasm3.loads(circuit), shots=shots).result().get_counts()
