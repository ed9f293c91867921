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
from shared.models import RunDetails
from worker import circuit_limits
from worker.circuit_limits import CircuitLimits, LimitExceeded
from worker.messages import TaskError, describe_unexpected, memory_limit_error
from worker.parsing import parse
from worker.results import Outcome, RunResult

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


def _undefined_gates(circuit: QuantumCircuit, native: frozenset[str]) -> set[str]:
    """Gates neither Aer nor a definition can run: OpenQASM 2 `opaque` declarations."""
    undefined = set()
    for instruction in circuit.data:
        operation = instruction.operation
        if isinstance(operation, ControlFlowOp):
            for block in operation.blocks:
                undefined |= _undefined_gates(block, native)
        elif operation.name not in native and operation.definition is None:
            undefined.add(operation.name)
    return undefined


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
            undefined = sorted(_undefined_gates(circuit, self.native))
            if undefined:
                raise TaskError(
                    "OpaqueGate",
                    f"gate '{undefined[0]}' is declared without a body (opaque), so there is nothing to simulate; "
                    f"define it with a body, e.g. gate {undefined[0]} a {{ … }}",
                )
            try:
                return self.unroll.run(circuit)
            except Exception as error:  # noqa: BLE001 - any unrolling failure is the circuit's
                raise TaskError("TranspilerError", str(error)) from None
        return circuit

    def run(self, circuit: QuantumCircuit, shots: int, seed: int | None) -> tuple[dict[str, int], float]:
        """Counts for a prepared circuit, keyed as Aer's get_counts() keys them, and the simulation's ms.

        Every declared bit is in the key: a loose `bit x;` is a one-bit register of its own.
        """
        options: dict[str, Any] = {"shots": shots}
        if seed is not None:
            options["seed_simulator"] = seed
        started = time.perf_counter()
        try:
            result = self.backend.run(circuit, **options).result()
        except MemoryError:
            raise
        except Exception as error:  # noqa: BLE001 - Aer raises many types for bad circuits
            raise TaskError(type(error).__name__, aer_message(str(error))) from None
        duration_ms = (time.perf_counter() - started) * 1000
        if not result.success:
            message = _aer_failure(result)
            if "bad_alloc" in message:  # Aer's allocation hit the process's address-space limit
                raise MemoryError(message)
            raise TaskError("SimulationError", message)
        counts = count_keys(circuit, result)
        if sum(counts.values()) != shots:
            raise TaskError("SimulationError", f"the counts add up to {sum(counts.values())} of {shots} shots")
        return counts, duration_ms


def count_keys(circuit: QuantumCircuit, result: Any) -> dict[str, int]:
    """Counts keyed by classical register, the last declared leftmost, bits separated by a space
    between registers, as Qiskit's get_counts() formats them.

    get_counts() builds keys from the registers alone, so with loose bits (`bit a;`, which the
    OpenQASM 3 importer keeps outside any register) different outcomes collided and overwrote each
    other. Aer's raw counts are integers over every memory slot (slot i is circuit.clbits[i]);
    here each loose bit becomes a group of its own, in declaration order.
    """
    groups: list[list[int]] = []
    seen: dict[Any, list[int]] = {}
    loose = False
    for index, bit in enumerate(circuit.clbits):
        registers = circuit.find_bit(bit).registers
        if not registers:
            loose = True
            groups.append([index])
            continue
        register = registers[0][0]
        if register not in seen:
            seen[register] = []
            groups.append(seen[register])
        seen[register].append(index)
    if not loose:
        return dict(result.get_counts())
    counts: dict[str, int] = {}
    for raw, n in result.results[0].data.counts.items():
        value = int(raw, 16)
        key = " ".join("".join("1" if value >> i & 1 else "0" for i in reversed(g)) for g in reversed(groups))
        counts[key] = counts.get(key, 0) + n
    return counts


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
    """The first experiment's failure, as one clean line."""
    statuses = [getattr(r, "status", "") for r in getattr(result, "results", [])] or [str(result.status)]
    return aer_message(next((s for s in statuses if s), str(result.status)))


def aer_message(message: str) -> str:
    """Aer wraps its text in a preamble and repeats it with `ERROR:` prefixes, over several lines;
    keep one clean copy."""
    message = message.replace("Simulation failed and returned the following error message:", "")
    message = re.sub(r"ERROR:\s*(\[Experiment \d+\]\s*)?", "", message)
    parts = [" ".join(part.split()) for part in message.split(" , ")]
    message = "; ".join(dict.fromkeys(part for part in parts if part))  # each distinct part once
    message = re.sub(r"\bcircuit (?:circuit-\d+|\S+) using\b", "the circuit using", message)
    if "Insufficient memory" in message:
        message += " (raise WORKER_MAX_MEMORY_MB or use fewer qubits)"
    return message


def execute(simulator: Simulator, circuit_text: str, shots: int, seed: int | None) -> RunResult:
    """Run one task: counts or a one-line `Type: message` error, with what is known of the circuit.

    Never raises for anything the circuit does.
    """
    facts: dict[str, Any] = {}

    def failed(error: str, memory_exceeded: bool = False) -> RunResult:
        return RunResult(Outcome.ERROR, error=error, details=RunDetails(**facts), memory_exceeded=memory_exceeded)

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
        return failed(str(error))
    except LimitExceeded as error:
        return failed(str(TaskError("CircuitTooLarge", str(error))))
    except MemoryError:
        return failed(memory_limit_error(simulator.max_memory_mb), memory_exceeded=True)
    except Exception as error:  # noqa: BLE001 - the worker must outlive any circuit
        line = describe_unexpected(error)
        logger.warning("unexpected error while running a circuit: %s", line)
        return failed(line)
    except BaseException as error:  # e.g. a pyo3 PanicException, which is not an Exception
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        return failed(describe_unexpected(error))
    return RunResult(Outcome.COUNTS, counts=counts, details=RunDetails(**facts))
