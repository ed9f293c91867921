"""Parse and simulate one circuit. The only module of the project that imports qiskit.

Runs inside the worker's simulation child process (see `worker.sandbox`), so a crash or a
runaway circuit here costs one task, never the worker.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Iterable
from typing import Any

from antlr4 import CommonTokenStream, InputStream
from antlr4.error.ErrorListener import ErrorListener
from openqasm3._antlr.qasm3Lexer import qasm3Lexer
from openqasm3._antlr.qasm3Parser import qasm3Parser
from openqasm3.parser import QASM3ParsingError
from qiskit import QuantumCircuit, qasm2, qasm3
from qiskit.circuit import ControlFlowOp
from qiskit.circuit.equivalence_library import SessionEquivalenceLibrary
from qiskit.exceptions import ExperimentalWarning
from qiskit.transpiler import PassManager
from qiskit.transpiler.passes import BasisTranslator, HighLevelSynthesis
from qiskit_aer import AerSimulator

from shared.examples import BELL_QASM3

logger = logging.getLogger(__name__)

ALLOWED_INCLUDES = {2: "qelib1.inc", 3: "stdgates.inc"}
# Qiskit's text drawing is cheap for small circuits (~0.25 ms for Bell) but grows with qubits x
# operations (~80 ms for a 20-qubit QFT): only small circuits are drawn.
DRAW_MAX_OPERATIONS = 80
DRAW_MAX_QUBITS = 16
DRAW_MAX_CHARS = 100_000
WARM_UP_CIRCUIT = BELL_QASM3
MAX_ERROR_CHARS = 500

_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
_HEADER = re.compile(r"\s*OPENQASM\s+([0-9]+)(?:\.([0-9]+))?\s*;")
_INCLUDE = re.compile(r"\binclude\s*(\"[^\"]*\"|'[^']*'|[^\s;]*)")
_QASM2_POSITION = re.compile(r"^<input>:(\d+),(\d+):\s*")
_QASM3_POSITION = re.compile(r"^(\d+),(\d+):\s*")
_ANTLR_POSITION = re.compile(r"^L(\d+):C(\d+):\s*")
_REGISTER_DECL = re.compile(
    r"\b(?:qubit|bit)\s*\[\s*(\d+)\s*\]\s*([A-Za-z_]\w*)|\b(?:qreg|creg)\s+([A-Za-z_]\w*)\s*\[\s*(\d+)\s*\]"
)
_INDEXED_USE = re.compile(r"\b([A-Za-z_]\w*)\s*\[\s*(\d+)\s*\]")


class TaskError(Exception):
    """A failure the user can act on; `str()` is the one line stored on the task."""

    def __init__(self, kind: str, message: str) -> None:
        one_line = " ".join(_unquote(message).split())
        one_line = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in one_line)
        if len(one_line) > MAX_ERROR_CHARS:
            one_line = one_line[: MAX_ERROR_CHARS - 3] + "..."
        super().__init__(f"{kind}: {one_line}")


def _unquote(message: str) -> str:
    """Some qiskit errors render as the repr of their message; drop that one pair of quotes."""
    message = message.strip()
    if len(message) >= 2 and message[0] == message[-1] and message[0] in "\"'":
        return message[1:-1]
    return message


def _strip_comments(text: str) -> str:
    # Replace each comment by as many newlines as it spans so line numbers stay right.
    return _COMMENT.sub(lambda m: "\n" * m.group(0).count("\n") + " ", text)


def detect_version(text: str) -> int:
    """2 for an `OPENQASM 2.x;` header, 3 for `OPENQASM 3.x;` or no header at all."""
    match = _HEADER.match(_strip_comments(text))
    if match is None:
        return 3
    major = int(match.group(1))
    if major not in ALLOWED_INCLUDES:
        raise TaskError("UnsupportedVersion", f"OPENQASM {match.group(1)} is not supported; use OPENQASM 2.0 or 3.0")
    return major


def check_includes(text: str, version: int) -> None:
    """Refuse every include but the standard library of the circuit's version, before any parser runs."""
    allowed = ALLOWED_INCLUDES[version]
    for match in _INCLUDE.finditer(_strip_comments(text)):
        target = match.group(1).strip("\"'")
        if target != allowed:
            shown = target if len(target) <= 80 else target[:77] + "..."
            raise TaskError(
                "IncludeNotAllowed",
                f'include "{shown}" is not allowed; an OpenQASM {version} circuit may include only "{allowed}"',
            )


class _FirstSyntaxError(ErrorListener):
    def __init__(self) -> None:
        self.first: tuple[int, int, str] | None = None

    def syntaxError(self, recognizer: Any, offendingSymbol: Any, line: int, column: int, msg: str, e: Any) -> None:
        if self.first is None:
            self.first = (line, column, msg)


def _qasm3_syntax_detail(text: str) -> str | None:
    """The strict parser bails with an empty message; a recovering parse names line, column and cause."""
    listener = _FirstSyntaxError()
    lexer = qasm3Lexer(InputStream(text))
    lexer.removeErrorListeners()
    lexer.addErrorListener(listener)
    parser = qasm3Parser(CommonTokenStream(lexer))
    parser.removeErrorListeners()
    parser.addErrorListener(listener)
    parser.program()
    if listener.first is None:
        return None
    line, column, msg = listener.first
    return f"line {line}:{column} {msg}"


def _register_sizes(text: str) -> dict[str, int]:
    sizes = {}
    for match in _REGISTER_DECL.finditer(_strip_comments(text)):
        if match.group(2):
            sizes[match.group(2)] = int(match.group(1))
        else:
            sizes[match.group(3)] = int(match.group(4))
    return sizes


def _index_detail(text: str) -> str:
    """Qiskit's OpenQASM 3 importer says only 'index out of range'; find the offending use ourselves."""
    sizes = _register_sizes(text)
    for number, line in enumerate(_strip_comments(text).splitlines(), start=1):
        for match in _INDEXED_USE.finditer(line):
            name, index = match.group(1), int(match.group(2))
            if name in sizes and index >= sizes[name]:
                return (
                    f"index {index} out of range for register '{name}' of size {sizes[name]} "
                    f"(line {number}); valid indices are 0 to {sizes[name] - 1}"
                )
    return "a register index in the circuit is out of range for its register's size"


def _with_position(message: str, pattern: re.Pattern[str], form: str = "line {0}, column {1}: ") -> str:
    message = _unquote(message)
    return pattern.sub(lambda m: form.format(m.group(1), m.group(2)), message, count=1)


# The Rust parser (qasm3.loads_experimental) is 10-30x faster than qasm3.loads but handles less:
# it is tried only on straight-line circuits (declarations, standard gates, measure, reset,
# barrier), and anything it refuses goes to qasm3.loads, whose messages users see. It opens any
# include path it is given, so it runs only after check_includes() allowed stdgates.inc alone.
_FAST_PARSER_UNSUPPORTED = re.compile(
    r"\b(gate|def|defcal|cal|defcalgrammar|opaque|for|while|if|else|switch|case|box|extern|let|const|input|output|"
    r"ctrl|negctrl|inv|pow|int|uint|float|angle|bool|complex|duration|stretch|array|return|break|continue|end|"
    r"delay|tau|euler|qreg|creg|U|CX|gphase)\b|[@{}τℇ]"
)
# A whole gate parameter of the form [-][N*]pi[*K][/M]: the Rust parser does not fold constant
# expressions, so such a parameter is replaced by its value, computed in the order qasm3.loads
# computes it. Anything else containing pi is left alone, and so goes to the reference parser.
_NUMBER = r"(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
_PI_PARAMETER = re.compile(
    rf"(?<=[(,])(\s*)(-?)(?:{_NUMBER}\s*\*\s*)?(?:pi|π)(?:\s*\*\s*{_NUMBER})?(?:\s*/\s*{_NUMBER})?(?=\s*[,)])"
)
_SHORT_HEADER = re.compile(r"^(\s*OPENQASM\s+3)\s*;")


def _pi_value(match: re.Match[str]) -> str:
    space, minus, factor, times, divisor = match.groups()
    value = -math.pi if minus else math.pi
    if factor is not None:
        value = (-_number(factor) if minus else _number(factor)) * math.pi
    if times is not None:
        value = value * _number(times)
    if divisor is not None:
        value = value / _number(divisor)
    return space + repr(value)


def _number(text: str) -> float | int:
    return float(text) if any(c in text for c in ".eE") else int(text)


def _fast_parse(text: str) -> QuantumCircuit | None:
    """The circuit from the Rust parser, or None when the reference parser must decide."""
    if _FAST_PARSER_UNSUPPORTED.search(_strip_comments(text)):
        return None
    # It rejects `pi/2` (a constant expression) and the short header; both have exact rewrites.
    source = _SHORT_HEADER.sub(r"\1.0;", _PI_PARAMETER.sub(_pi_value, text), count=1)
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)  # it prints its diagnostics straight to the process's stdout
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)  # known, and checked by our tests
            return qasm3.loads_experimental(source)
    except BaseException as error:  # noqa: BLE001 - it panics with a BaseException on some input
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        return None
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def parse(text: str) -> QuantumCircuit:
    """OpenQASM 2 or 3 text to a circuit, or a TaskError that says what to fix."""
    version = detect_version(text)
    check_includes(text, version)
    if version == 3:
        fast = _fast_parse(text)
        if fast is not None:
            return fast
    if version == 2:
        try:
            # include_path=() : qelib1.inc is built in; no file on the server is ever opened.
            return qasm2.loads(text, include_path=(), custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
        except qasm2.QASM2ParseError as error:
            raise TaskError("QASM2ParseError", _with_position(str(error), _QASM2_POSITION)) from None
    try:
        return qasm3.loads(text)
    except QASM3ParsingError as error:
        detail = _with_position(str(error), _ANTLR_POSITION, "line {0}:{1} ")
        detail = detail or _qasm3_syntax_detail(text) or "the text is not valid OpenQASM 3"
        raise TaskError("QASM3ParsingError", detail) from None
    except qasm3.QASM3ImporterError as error:
        raise TaskError("QASM3ImporterError", _with_position(str(error), _QASM3_POSITION)) from None
    except IndexError:
        raise TaskError("IndexError", _index_detail(text)) from None
    except RecursionError:
        raise TaskError("QASM3ParsingError", "the circuit is nested too deeply to parse") from None


def _operation_names(circuit: QuantumCircuit) -> Iterable[str]:
    for instruction in circuit.data:
        operation = instruction.operation
        yield operation.name
        if isinstance(operation, ControlFlowOp):
            for block in operation.blocks:
                yield from _operation_names(block)


class Simulator:
    """One AerSimulator and one unrolling pass manager, built once per child process."""

    def __init__(self, max_memory_mb: int, threads: int = 0) -> None:
        # threads=0 lets Aer use every core; with several workers on one machine, 1 each is faster.
        options = {"max_parallel_threads": threads} if threads else {}
        self.backend = AerSimulator(max_memory_mb=max_memory_mb, **options)
        self.native = set(self.backend.configuration().basis_gates) | {"measure", "barrier"}
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
        except Exception as error:  # noqa: BLE001 - Aer raises many types for bad circuits
            raise TaskError(type(error).__name__, str(error)) from None
        duration_ms = (time.perf_counter() - started) * 1000
        if not result.success:
            raise TaskError("SimulationError", _aer_failure(result))
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


def describe_unexpected(error: BaseException) -> str:
    """One line for an error nobody anticipated, without tracebacks or server paths."""
    message = " ".join(str(error).split()) or "no details"
    for prefix in {sys.prefix, sys.base_prefix}:
        message = message.replace(prefix, "<python>")
    return str(TaskError(type(error).__name__, message))


def execute(simulator: Simulator, circuit_text: str, shots: int, seed: int | None) -> dict[str, Any]:
    """Run one task: {'counts': ...} or {'error': 'Type: message'}, plus what is known of the circuit.

    Never raises for anything the circuit does.
    """
    facts: dict[str, Any] = {}
    try:
        started = time.perf_counter()
        circuit = parse(circuit_text)
        facts = {"parse_ms": (time.perf_counter() - started) * 1000, **describe(circuit)}
        started = time.perf_counter()
        prepared = simulator.prepare(circuit)
        facts["transpile_ms"] = (time.perf_counter() - started) * 1000
        counts, facts["duration_ms"] = simulator.run(prepared, shots, seed)
    except TaskError as error:
        return {"error": str(error), **facts}
    except Exception as error:  # noqa: BLE001 - the worker must outlive any circuit
        line = describe_unexpected(error)
        logger.warning("unexpected error while running a circuit: %s", line)
        return {"error": line, **facts}
    except BaseException as error:  # e.g. a pyo3 PanicException, which is not an Exception
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        return {"error": describe_unexpected(error), **facts}
    return {"counts": counts, **facts}
