"""OpenQASM text to a Qiskit circuit: version, include policy, the fast and the reference parser.

No file on the server is ever opened: the Rust parser sees only text `worker.fastpath` wrote
(which can include nothing but the built-in stdgates.inc), `qasm3.loads` refuses every include
but stdgates.inc without opening anything, and `qasm2.loads` gets an empty include path.
`check_includes` only words the refusal; it is not what keeps files closed.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from typing import Any

from antlr4 import CommonTokenStream, InputStream
from antlr4.error.ErrorListener import ErrorListener
from openqasm3._antlr.qasm3Lexer import qasm3Lexer
from openqasm3._antlr.qasm3Parser import qasm3Parser
from openqasm3.parser import QASM3ParsingError
from qiskit import QuantumCircuit, qasm2, qasm3
from qiskit.circuit.exceptions import CircuitError
from qiskit.exceptions import ExperimentalWarning

from worker import fastpath
from worker.messages import TaskError, unquote, with_position

ALLOWED_INCLUDES = {2: "qelib1.inc", 3: "stdgates.inc"}
BYTE_ORDER_MARK = "\ufeff"

_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
_HEADER = re.compile(r"\s*OPENQASM\s+([0-9]+)(?:\.([0-9]+))?\s*;")
_INCLUDE = re.compile(r"include\s*(\"[^\"]*\"|'[^']*'|[^\s;]*)")
_QASM2_POSITION = re.compile(r"^<input>:(\d+),(\d+):\s*")
_QASM3_POSITION = re.compile(r"^(\d+),(\d+):\s*")
_ANTLR_POSITION = re.compile(r"^L(\d+):C(\d+):\s*")
_REGISTER_DECL = re.compile(
    r"\b(?:qubit|bit)\s*\[\s*(\d+)\s*\]\s*([A-Za-z_]\w*)|\b(?:qreg|creg)\s+([A-Za-z_]\w*)\s*\[\s*(\d+)\s*\]"
)
_MEASURE_INTO = re.compile(r"\b([A-Za-z_]\w*)\s*=\s*measure\s+([A-Za-z_]\w*)\s*;")
_INDEXED_USE = re.compile(r"\b([A-Za-z_]\w*)\s*\[\s*(\d+)\s*\]")
_LONG_INTEGER = re.compile(rf"\d{{{sys.get_int_max_str_digits() + 1},}}")


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
    """Name a refused include before a parser gives a vaguer message for it."""
    allowed = ALLOWED_INCLUDES[version]
    for match in _INCLUDE.finditer(_strip_comments(text)):
        target = match.group(1).strip("\"'")
        if target != allowed:
            shown = target if len(target) <= 80 else target[:77] + "..."
            raise TaskError(
                "IncludeNotAllowed",
                f'include "{shown}" is not allowed; an OpenQASM {version} circuit may include only "{allowed}"',
            )


def parse(text: str) -> QuantumCircuit:
    """OpenQASM 2 or 3 text to a circuit, or a TaskError that says what to fix."""
    text = text.removeprefix(BYTE_ORDER_MARK)  # editors on Windows save one; it means nothing
    version = detect_version(text)
    check_includes(text, version)
    if version == 3:
        fast = _fast_parse(text)
        if fast is not None:
            return fast
    try:
        if version == 2:
            return _parse_qasm2(text)
        return _parse_qasm3(text)
    except ValueError as error:
        if "int_max_str_digits" not in str(error):
            raise
        raise TaskError("ParseError", _long_integer_detail(text)) from None


def _parse_qasm2(text: str) -> QuantumCircuit:
    try:
        # include_path=() : qelib1.inc is built in; no file on the server is ever opened.
        return qasm2.loads(text, include_path=(), custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
    except qasm2.QASM2ParseError as error:
        raise TaskError("QASM2ParseError", with_position(str(error), _QASM2_POSITION)) from None


def _parse_qasm3(text: str) -> QuantumCircuit:
    try:
        return qasm3.loads(text)
    except QASM3ParsingError as error:
        detail = with_position(str(error), _ANTLR_POSITION, "line {0}:{1} ")
        detail = detail or _qasm3_syntax_detail(text) or "the text is not valid OpenQASM 3"
        raise TaskError("QASM3ParsingError", detail) from None
    except qasm3.QASM3ImporterError as error:
        if "non-stdgates imports" in str(error):
            where = with_position(str(error), _QASM3_POSITION)
            raise TaskError("IncludeNotAllowed", f'{where}; only "stdgates.inc" may be included') from None
        raise TaskError("QASM3ImporterError", with_position(str(error), _QASM3_POSITION)) from None
    except IndexError:
        raise TaskError("IndexError", _index_detail(text)) from None
    except RecursionError:
        raise TaskError("QASM3ParsingError", "the circuit is nested too deeply to parse") from None
    except (CircuitError, ZeroDivisionError, TypeError) as error:
        line = _source_line(error)
        where = f"line {line}: " if line is not None else ""
        raise TaskError(type(error).__name__, where + _importer_hint(error, text, line)) from None


def _source_line(error: BaseException) -> int | None:
    """The line of the innermost OpenQASM statement or expression the importer was converting.

    The importer's own errors carry no position, but its frames hold the AST node at hand.
    """
    line: int | None = None
    trace = error.__traceback__
    while trace is not None:
        for value in list(trace.tb_frame.f_locals.values()):
            start = getattr(getattr(value, "span", None), "start_line", None)
            if isinstance(start, int):
                line = start
        trace = trace.tb_next
    return line


def _importer_hint(error: BaseException, text: str, line: int | None) -> str:
    """What to change, for the importer errors whose own words do not say it."""
    message = str(error)
    if isinstance(error, ZeroDivisionError):
        return "a gate parameter divides by zero"
    if isinstance(error, TypeError) and "index must be int" in message:
        return (
            "a register indexed by a loop variable (such as q[i]) is not supported; "
            "write the indices out, e.g. cx q[0], q[1];"
        )
    if isinstance(error, CircuitError) and "register size error" in message:
        sizes = _register_sizes(text)
        lines = text.splitlines()
        statement = lines[line - 1] if line is not None and 0 < line <= len(lines) else ""
        match = _MEASURE_INTO.search(statement)
        if match and match.group(1) in sizes and match.group(2) in sizes:
            bits, qubits = match.group(1), match.group(2)
            return (
                f"measure {qubits} into {bits} maps {sizes[qubits]} qubits to {sizes[bits]} bits; "
                f"declare bit[{sizes[qubits]}] {bits} or measure qubit by qubit ({bits}[0] = measure {qubits}[0];)"
            )
        return "a measurement maps a register onto a register of another size; make the sizes equal"
    return unquote(message)


def _fast_parse(text: str) -> QuantumCircuit | None:
    """The circuit from the Rust parser, or None when the reference parser must decide."""
    source = fastpath.canonical_text(text)
    if source is None:
        return None
    # It prints diagnostics to stdout and panics (with the source text) to stderr: neither may
    # reach the worker's log, where a crafted circuit could forge lines.
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in saved:
            os.dup2(devnull, fd)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)  # known, and checked by our tests
            return qasm3.loads_experimental(source)
    except BaseException as error:  # noqa: BLE001 - it panics with a BaseException on some input
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        return None
    finally:
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)


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


def _long_integer_detail(text: str) -> str:
    limit = sys.get_int_max_str_digits()
    match = _LONG_INTEGER.search(text)
    where = f"line {text.count(chr(10), 0, match.start()) + 1}: " if match else ""
    digits = f" of {match.end() - match.start()} digits" if match else ""
    return f"{where}an integer literal{digits} is too long; integers may have at most {limit} digits"
