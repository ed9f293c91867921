"""Size limits a circuit must keep: refused cheaply, before the parsers or Aer build anything big.

Two checks. `check_text` reads the text before any parser does: declared register sizes, literal
loop ranges and the expansion of user-defined gates (a chain of gates that each call the
previous one twice is 2^40 operations in 40 lines, and `qasm3.loads` builds it all). It reads
literals only; whatever it cannot see is caught by `check_circuit` on the parsed circuit, or in
the end by the simulation process's memory limit. No qiskit import: the parent process uses
`CircuitLimits` too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CircuitLimits:
    max_qubits: int = 1024
    max_clbits: int = 1024
    max_loop_iterations: int = 1_000_000
    max_unrolled_operations: int = 1_000_000


class LimitExceeded(Exception):
    """`str()` is the message; the kind is CircuitTooLarge."""


_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
_REGISTER = re.compile(
    r"\b(qubit|bit)\s*\[\s*(\d+)\s*\]\s*([A-Za-z_]\w*)|\b(qreg|creg)\s+([A-Za-z_]\w*)\s*\[\s*(\d+)\s*\]"
)
_RANGE = re.compile(r"\bfor\b[^;{]*?\bin\s*\[\s*(-?\d+)\s*:\s*(-?\d+)\s*(?::\s*(-?\d+)\s*)?\]")
_GATE = re.compile(r"\bgate\s+([A-Za-z_]\w*)[^{;]*\{([^{}]*)\}")
_MODIFIERS = re.compile(r"^(?:\s*(?:ctrl|negctrl|inv|pow)\s*(?:\([^)]*\))?\s*@)*\s*")
_CALLEE = re.compile(r"[A-Za-z_]\w*")


def check_text(text: str, limits: CircuitLimits) -> None:
    """Raise LimitExceeded for a literal size in the text above a limit."""
    code = _COMMENT.sub(lambda m: "\n" * m.group().count("\n"), text)
    for match in _REGISTER.finditer(code):
        if match.group(1):
            kind, size, name = match.group(1), int(match.group(2)), match.group(3)
        else:
            kind, name, size = match.group(4), match.group(5), int(match.group(6))
        quantum = kind in ("qubit", "qreg")
        limit = limits.max_qubits if quantum else limits.max_clbits
        if size > limit:
            setting = "MAX_QUBITS" if quantum else "MAX_CLBITS"
            raise LimitExceeded(
                f"{'qubit' if quantum else 'bit'} register '{name}' (line {_line(code, match.start())}) "
                f"declares {size} {'qubits' if quantum else 'bits'}; the limit is {setting}={limit}"
            )
    for match in _RANGE.finditer(code):
        first, second, third = (int(g) if g is not None else None for g in match.groups())
        assert first is not None and second is not None
        start, step, stop = (first, 1, second) if third is None else (first, second, third)
        _check_iterations(_trip_count(start, step, stop), limits, _line(code, match.start()))
    sizes: dict[str, int] = {}
    for match in _GATE.finditer(code):
        total = 0
        for statement in match.group(2).split(";"):
            callee = _CALLEE.match(_MODIFIERS.sub("", statement, count=1))
            if callee is not None:
                total += sizes.get(callee.group(), 1)
        sizes[match.group(1)] = total
        if total > limits.max_unrolled_operations:
            raise LimitExceeded(
                f"gate '{match.group(1)}' (line {_line(code, match.start())}) expands to {total} operations; "
                f"the limit is MAX_UNROLLED_OPERATIONS={limits.max_unrolled_operations}"
            )


def check_circuit(circuit: Any, limits: CircuitLimits, native: frozenset[str]) -> None:
    """Raise LimitExceeded if the parsed circuit is too wide or unrolls to too many operations.

    `native` names the operations the simulator runs as they are; any other is expanded.
    """
    if circuit.num_qubits > limits.max_qubits:
        raise LimitExceeded(f"the circuit has {circuit.num_qubits} qubits; the limit is MAX_QUBITS={limits.max_qubits}")
    if circuit.num_clbits > limits.max_clbits:
        raise LimitExceeded(f"the circuit has {circuit.num_clbits} bits; the limit is MAX_CLBITS={limits.max_clbits}")
    total = _unrolled(circuit, limits, native, {})
    if total > limits.max_unrolled_operations:
        raise LimitExceeded(
            f"the circuit unrolls to {total} operations (loops and gate definitions expanded); "
            f"the limit is MAX_UNROLLED_OPERATIONS={limits.max_unrolled_operations}"
        )


def _unrolled(circuit: Any, limits: CircuitLimits, native: frozenset[str], memo: dict[Any, int]) -> int:
    """Operations once loops and user-defined gates are expanded; stops counting past the limit."""
    total = 0
    for instruction in circuit.data:
        operation = instruction.operation
        blocks = getattr(operation, "blocks", None)
        if blocks:
            inner = sum(_unrolled(block, limits, native, memo) for block in blocks)
            indexset = operation.params[0] if operation.name == "for_loop" else None
            if isinstance(indexset, range):
                iterations = len(indexset)
                _check_iterations(iterations, limits)
                inner *= iterations
            total += inner
        elif operation.name not in native and getattr(operation, "definition", None) is not None:
            key = (operation.name, repr(operation.params))
            if key not in memo:
                memo[key] = _unrolled(operation.definition, limits, native, memo)
            total += memo[key]
        else:
            total += 1
        if total > limits.max_unrolled_operations:
            return total
    return total


def _check_iterations(iterations: int, limits: CircuitLimits, line: int | None = None) -> None:
    if iterations > limits.max_loop_iterations:
        where = f" (line {line})" if line is not None else ""
        raise LimitExceeded(
            f"a for loop{where} runs {iterations} times; the limit is MAX_LOOP_ITERATIONS={limits.max_loop_iterations}"
        )


def _trip_count(start: int, step: int, stop: int) -> int:
    """OpenQASM 3 ranges include their end: [0:3] is 0, 1, 2, 3."""
    if step == 0:
        return 0
    return max(0, (stop - start) // step + 1)


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1
