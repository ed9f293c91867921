"""Simulate one parsed circuit on Aer, and run a whole task: limits, parse, prepare, simulate.

Runs inside the worker's simulation child process (see `worker.sandbox`), so a crash or a
runaway circuit here costs one task, never the worker.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from typing import Any

from qiskit import QuantumCircuit
from qiskit.circuit import ControlFlowOp
from qiskit.circuit.equivalence_library import SessionEquivalenceLibrary
from qiskit.transpiler import PassManager
from qiskit.transpiler.passes import BasisTranslator, HighLevelSynthesis
from qiskit_aer import AerSimulator

from shared.examples import BELL_QASM3
from worker import circuit_limits
from worker.circuit_limits import CircuitLimits, LimitExceeded
from worker.messages import TaskError, describe_unexpected, memory_limit_error
from worker.parsing import parse

logger = logging.getLogger(__name__)

# Qiskit's text drawing is cheap for small circuits (~0.25 ms for Bell) but grows with qubits x
# operations (~80 ms for a 20-qubit QFT): only small circuits are drawn.
DRAW_MAX_OPERATIONS = 80
DRAW_MAX_QUBITS = 16
DRAW_MAX_CHARS = 100_000
WARM_UP_CIRCUIT = BELL_QASM3


def _operation_names(circuit: QuantumCircuit) -> Iterable[str]:
    for instruction in circuit.data:
        operation = instruction.operation
        yield operation.name
        if isinstance(operation, ControlFlowOp):
            for block in operation.blocks:
                yield from _operation_names(block)


class Simulator:
    """One AerSimulator and one unrolling pass manager, built once per child process."""

    def __init__(self, max_memory_mb: int, threads: int = 0, limits: CircuitLimits | None = None) -> None:
        # threads=0 lets Aer use every core; with several workers on one machine, 1 each is faster.
        options = {"max_parallel_threads": threads} if threads else {}
        self.max_memory_mb = max_memory_mb
        self.limits = limits or CircuitLimits()
        self.backend = AerSimulator(max_memory_mb=max_memory_mb, **options)
        self.native = frozenset(self.backend.configuration().basis_gates) | {"measure", "barrier"}
        basis = sorted(self.native)
        # Aer runs the standard gates natively; only user-defined gates need unrolling, and a pass
        # manager built once costs well under a millisecond, unlike transpile() against a target
        # (~100 ms, and it refuses circuits wider than the target even where Aer could run them).
        self.unroll = PassManager(
            [
                HighLevelSynthesis(basis_gates=basis, equivalence_library=SessionEquivalenceLibrary),
                BasisTranslator(SessionEquivalenceLibrary, basis),
            ]
        )

    def prepare(self, circuit: QuantumCircuit) -> QuantumCircuit:
        """The circuit in gates Aer runs natively; user-defined gates are unrolled."""
        names = set(_operation_names(circuit))
        if "measure" not in names:
            raise TaskError(
                "NoMeasurements",
                "the circuit measures nothing, so there are no counts; "
                "add measurements, e.g. `c = measure q;` (OpenQASM 3) or `measure q -> c;` (OpenQASM 2)",
            )
        if not names <= self.native:
            try:
                return self.unroll.run(circuit)
            except Exception as error:  # noqa: BLE001 - any unrolling failure is the circuit's
                raise TaskError("TranspilerError", str(error)) from None
        return circuit

    def run(self, circuit: QuantumCircuit, shots: int, seed: int | None) -> tuple[dict[str, int], float]:
        """Counts for a prepared circuit, exactly as Aer's get_counts() gives them, and the simulation's ms."""
        options: dict[str, Any] = {"shots": shots}
        if seed is not None:
            options["seed_simulator"] = seed
        started = time.perf_counter()
        try:
            result = self.backend.run(circuit, **options).result()
        except MemoryError:
            raise
        except Exception as error:  # noqa: BLE001 - Aer raises many types for bad circuits
            raise TaskError(type(error).__name__, str(error)) from None
        duration_ms = (time.perf_counter() - started) * 1000
        if not result.success:
            message = _aer_failure(result)
            if "bad_alloc" in message:  # Aer's allocation hit the process's address-space limit
                raise MemoryError(message)
            raise TaskError("SimulationError", message)
        return dict(result.get_counts()), duration_ms


def describe(circuit: QuantumCircuit) -> dict[str, Any]:
    """Facts about a parsed circuit the dashboard shows: width, depth, and a text drawing when small."""
    facts: dict[str, Any] = {"num_qubits": circuit.num_qubits, "depth": circuit.depth()}
    if circuit.size() <= DRAW_MAX_OPERATIONS and 0 < circuit.num_qubits <= DRAW_MAX_QUBITS:
        try:
            drawing = str(circuit.draw(output="text", fold=-1))
        except Exception:  # noqa: BLE001 - a drawing is a nicety, never a reason to fail a task
            drawing = ""
        if drawing and len(drawing) <= DRAW_MAX_CHARS:
            facts["diagram"] = drawing
    return facts


def _aer_failure(result: Any) -> str:
    """Aer repeats its message with `ERROR:` prefixes; keep one clean copy."""
    statuses = [getattr(r, "status", "") for r in getattr(result, "results", [])] or [str(result.status)]
    message = next((s for s in statuses if s), str(result.status))
    message = re.sub(r"ERROR:\s*(\[Experiment \d+\]\s*)?", "", message).strip()
    message = re.sub(r"\bcircuit (?:circuit-\d+|\S+) using\b", "the circuit using", message)
    if "Insufficient memory" in message:
        message += " (raise WORKER_MAX_MEMORY_MB or use fewer qubits)"
    return message


def execute(simulator: Simulator, circuit_text: str, shots: int, seed: int | None) -> dict[str, Any]:
    """Run one task: {'counts': ...} or {'error': 'Type: message'}, plus what is known of the circuit.

    Never raises for anything the circuit does.
    """
    facts: dict[str, Any] = {}
    try:
        started = time.perf_counter()
        circuit_limits.check_text(circuit_text, simulator.limits)
        circuit = parse(circuit_text)
        circuit_limits.check_circuit(circuit, simulator.limits, simulator.native)
        facts = {"parse_ms": (time.perf_counter() - started) * 1000, **describe(circuit)}
        started = time.perf_counter()
        prepared = simulator.prepare(circuit)
        facts["transpile_ms"] = (time.perf_counter() - started) * 1000
        counts, facts["duration_ms"] = simulator.run(prepared, shots, seed)
    except TaskError as error:
        return {"error": str(error), **facts}
    except LimitExceeded as error:
        return {"error": str(TaskError("CircuitTooLarge", str(error))), **facts}
    except MemoryError:
        return {"error": memory_limit_error(simulator.max_memory_mb), "memory_exceeded": True, **facts}
    except Exception as error:  # noqa: BLE001 - the worker must outlive any circuit
        line = describe_unexpected(error)
        logger.warning("unexpected error while running a circuit: %s", line)
        return {"error": line, **facts}
    except BaseException as error:  # e.g. a pyo3 PanicException, which is not an Exception
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        return {"error": describe_unexpected(error), **facts}
    return {"counts": counts, **facts}
