"""`QTQBackend`: a Quantum Task Queue service as a Qiskit `BackendV2`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from qiskit.circuit import BreakLoopOp, ContinueLoopOp, ForLoopOp, IfElseOp, QuantumCircuit, WhileLoopOp
from qiskit.circuit.library import get_standard_gate_name_mapping
from qiskit.providers import BackendV2, Options
from qiskit.transpiler import Target

from qtq._version import __version__
from qtq.client import Client
from qtq.qiskit.job import Experiments, QTQJob
from qtq.qiskit.tasks import circuit_task, seeded

# The gates of OpenQASM 3's stdgates.inc (and its built-in `U`, Qiskit's `u`) that Aer runs
# natively. `ch` is in stdgates.inc but not among Aer's basis gates (the service unrolls it), and
# Aer's other natives (`rzz`, `ecr`, …) would reach the service as gate definitions to unroll:
# a transpile() against this target leaves only what the service hands to Aer as it is.
NATIVE_GATES = (
    *("id", "x", "y", "z", "h", "s", "sdg", "t", "tdg", "sx", "p", "rx", "ry", "rz", "u", "u1", "u2", "u3"),
    *("cx", "cy", "cz", "cp", "crx", "cry", "crz", "cu", "swap", "ccx", "cswap"),
)
# What the service's OpenQASM 3 importer and Aer run besides gates (`switch` is refused by the importer).
OPERATIONS = ("measure", "reset", "delay")
CONTROL_FLOW = {
    "if_else": IfElseOp,
    "while_loop": WhileLoopOp,
    "for_loop": ForLoopOp,
    "break_loop": BreakLoopOp,
    "continue_loop": ContinueLoopOp,
}


def build_target(num_qubits: int) -> Target:
    """The native gates and operations, each on every qubit (a simulator has no coupling map)."""
    target = Target(description="Quantum Task Queue (Qiskit Aer)", num_qubits=num_qubits)
    standard = get_standard_gate_name_mapping()
    for name in (*NATIVE_GATES, *OPERATIONS):
        target.add_instruction(standard[name], name=name)
    for name, operation in CONTROL_FLOW.items():
        target.add_instruction(operation, name=name)
    return target


class QTQBackend(BackendV2):
    """Runs circuits on a Quantum Task Queue service: `run()` sends them as one batch.

    `client` defaults to `Client()` (QTQ_URL, else http://127.0.0.1:8000). The target holds the
    gates Aer runs natively on as many qubits as the service allows (`GET /limits`: MAX_QUBITS),
    `max_circuits` is its MAX_BATCH_TASKS, and `shots` defaults to its DEFAULT_SHOTS.
    """

    def __init__(self, client: Client | None = None, *, name: str = "qtq", **options: Any) -> None:
        self.client = client if client is not None else Client()
        limits = self.client.limits()
        super().__init__(
            name=name,
            description=f"Quantum Task Queue at {self.client.url}: Qiskit Aer behind a task queue",
            backend_version=__version__,
        )
        self._target = build_target(limits["max_qubits"])
        self._max_circuits = limits["max_batch_tasks"]
        self.options.set_validator("shots", (1, limits["max_shots"]))
        self.set_options(shots=limits["default_shots"], **options)

    @classmethod
    def _default_options(cls) -> Options:
        return Options(shots=1024, seed_simulator=None, memory=False, parameter_binds=None, method=None, noise=None)

    @property
    def target(self) -> Target:
        return self._target

    @property
    def max_circuits(self) -> int:
        return self._max_circuits

    def run(self, run_input: QuantumCircuit | Sequence[QuantumCircuit], **options: Any) -> QTQJob:
        """Send the circuits as one batch of tasks and return its job at once.

        Options (the backend's by default): `shots`, `seed_simulator` (the circuits then sample
        what one `AerSimulator.run` with that seed samples), `memory` (every shot's outcome),
        `parameter_binds` (one `{Parameter: value or [values]}` per circuit; a list of values is a
        sweep, one experiment per value, as in Aer), `method` and `noise` (the service's).
        """
        circuits = [run_input] if isinstance(run_input, QuantumCircuit) else list(run_input)
        settings = dict(self.options.items())
        unknown = sorted(set(options) - set(settings))
        if unknown:
            raise ValueError(f"unknown run options {unknown}; {type(self).__name__} takes {sorted(settings)}")
        settings.update(options)
        binds: Sequence[Mapping[Any, Any] | None] = settings["parameter_binds"] or [None] * len(circuits)
        if len(binds) != len(circuits):
            raise ValueError(f"parameter_binds holds {len(binds)} bindings for {len(circuits)} circuits")
        tasks = [
            circuit_task(
                circuit,
                values,
                shots=settings["shots"],
                memory=bool(settings["memory"]) or None,
                method=settings["method"],
                noise=settings["noise"],
            )
            for circuit, values in zip(circuits, binds, strict=True)
        ]
        batch = self.client.submit_batch(seeded(tasks, settings["seed_simulator"]))
        plans = [Experiments(c, task.points, settings["shots"]) for c, task in zip(circuits, tasks, strict=True)]
        return QTQJob(self, batch, plans)
