"""What the fast OpenQASM 3 parser may see: an allow-list of statements, rewritten by us.

Qiskit's Rust parser (`qasm3.loads_experimental`) is 10-30x faster than `qasm3.loads`, but it
opens any include path it is given, with its own lexer. So it never reads the user's text: this
module tokenizes the text, accepts it only when every statement is one of

    OPENQASM 3; / OPENQASM 3.0;          include "stdgates.inc";
    qubit[N] q; / qubit q;               bit[N] c; / bit c;
    g(params) q[i], r, ...;              (g a standard gate the two parsers build identically)
    c = measure q; / c[i] = measure q[j];
    barrier q, r[i];

with gate parameters that are numbers or `[-][N*]pi[*K][/M]`, and then writes the program out
again itself, without comments, with each `pi` expression replaced by its value. The Rust parser
gets that text and nothing else: it can only ever see the one standard include. Anything else
(a string, a `#pragma`, a character outside this alphabet, a keyword or a gate not listed) makes
`canonical_text` return None and the reference parser, which never opens a file, decides.
"""

from __future__ import annotations

import math
import re

# Standard gates both parsers turn into the same Qiskit instructions with the same parameters
# (tests/test_parsing.py checks each one). Left out on purpose: `id` (qasm3.loads builds
# U(0,0,0)), and `cu`, `u2`, `u3`, `U`, `gphase`, which the Rust parser refuses or mis-builds.
FAST_GATES: dict[str, tuple[int, int]] = {  # name -> (parameters, qubits)
    **dict.fromkeys(["x", "y", "z", "h", "s", "sdg", "t", "tdg", "sx"], (0, 1)),
    **dict.fromkeys(["p", "phase", "rx", "ry", "rz", "u1"], (1, 1)),
    **dict.fromkeys(["cx", "CX", "cy", "cz", "ch", "swap"], (0, 2)),
    **dict.fromkeys(["cp", "cphase", "crx", "cry", "crz"], (1, 2)),
    **dict.fromkeys(["ccx", "cswap"], (0, 3)),
}
KEYWORDS = frozenset({"OPENQASM", "include", "qubit", "bit", "measure", "barrier", "pi"})
# Longer numbers go to the reference parser, which explains what is wrong with them.
MAX_NUMBER_CHARS = 40
MAX_REGISTER_SIZE = 1 << 20

_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\n]+|\r\n)
  | (?P<comment>//[^\n\r]*|/\*(?:(?!/\*)[^\r])*?\*/)
  | (?P<float>\d+\.\d*(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+)
  | (?P<int>\d+)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*|π)
  | (?P<string>"stdgates\.inc")
  | (?P<punct>[\[\](),;=*/-])
    """,
    re.VERBOSE,
)
_PI = ("pi", "π")


class _Refused(Exception):
    """The text is outside the fast path's language; the reference parser decides."""


class _Tokens:
    def __init__(self, text: str) -> None:
        tokens: list[tuple[str, str]] = []
        position = 0
        for match in _TOKEN.finditer(text):
            if match.start() != position:
                raise _Refused  # a character no token starts with
            position = match.end()
            kind = match.lastgroup
            assert kind is not None
            if kind in ("space", "comment"):
                continue
            value = match.group()
            if kind in ("float", "int") and len(value) > MAX_NUMBER_CHARS:
                raise _Refused
            tokens.append((kind, value))
        if position != len(text):
            raise _Refused
        self.tokens = tokens
        self.index = 0

    def peek(self, offset: int = 0) -> str | None:
        at = self.index + offset
        return self.tokens[at][1] if at < len(self.tokens) else None

    def take(self, kind: str | None = None, value: str | None = None) -> str:
        if self.index >= len(self.tokens):
            raise _Refused
        token_kind, token_value = self.tokens[self.index]
        if (kind is not None and token_kind != kind) or (value is not None and token_value != value):
            raise _Refused
        self.index += 1
        return token_value

    def done(self) -> bool:
        return self.index >= len(self.tokens)


def canonical_text(text: str) -> str | None:
    """The program rewritten for the Rust parser, or None when the reference parser must read it."""
    try:
        return _Program(_Tokens(text)).write()
    except _Refused:
        return None


class _Program:
    def __init__(self, tokens: _Tokens) -> None:
        self.tokens = tokens
        self.qubits: dict[str, int | None] = {}  # name -> size, None for a single `qubit q;`
        self.bits: dict[str, int | None] = {}
        self.lines = ["OPENQASM 3.0;"]

    def write(self) -> str:
        tokens = self.tokens
        if tokens.peek() == "OPENQASM":
            tokens.take()
            if tokens.take() not in ("3", "3.0"):
                raise _Refused
            tokens.take("punct", ";")
        if tokens.peek() == "include":
            tokens.take()
            tokens.take("string")
            tokens.take("punct", ";")
            self.lines.append('include "stdgates.inc";')
        while not tokens.done():
            self.lines.append(self._statement())
        return "\n".join(self.lines) + "\n"

    def _statement(self) -> str:
        tokens = self.tokens
        word = tokens.take("name")
        if word in ("qubit", "bit"):
            return self._declaration(word)
        if word == "barrier":  # a bare `barrier;` makes the Rust parser panic
            operands = self._operands(self.qubits)
            tokens.take("punct", ";")
            return f"barrier {', '.join(operands)};"
        if word in FAST_GATES:
            return self._gate_call(word)
        if word in self.bits:
            target = self._operand_after(word, self.bits)
            tokens.take("punct", "=")
            tokens.take("name", "measure")
            source = self._operand(self.qubits)
            tokens.take("punct", ";")
            return f"{target} = measure {source};"
        raise _Refused

    def _declaration(self, kind: str) -> str:
        tokens = self.tokens
        size: int | None = None
        if tokens.peek() == "[":
            tokens.take()
            size = int(tokens.take("int"))
            tokens.take("punct", "]")
            if not 0 < size <= MAX_REGISTER_SIZE:
                raise _Refused
        name = tokens.take("name")
        tokens.take("punct", ";")
        if name in KEYWORDS or name in FAST_GATES or name in _PI or name in self.qubits or name in self.bits:
            raise _Refused
        (self.qubits if kind == "qubit" else self.bits)[name] = size
        return f"{kind}[{size}] {name};" if size is not None else f"{kind} {name};"

    def _gate_call(self, gate: str) -> str:
        tokens = self.tokens
        n_params, n_qubits = FAST_GATES[gate]
        params: list[str] = []
        if tokens.peek() == "(":
            tokens.take()
            params.append(self._parameter())
            while tokens.peek() == ",":
                tokens.take()
                params.append(self._parameter())
            tokens.take("punct", ")")
        if len(params) != n_params:
            raise _Refused
        operands = self._operands(self.qubits)
        tokens.take("punct", ";")
        if len(operands) != n_qubits:
            raise _Refused
        head = f"{gate}({', '.join(params)})" if params else gate
        return f"{head} {', '.join(operands)};"

    def _operands(self, registers: dict[str, int | None]) -> list[str]:
        operands = [self._operand(registers)]
        while self.tokens.peek() == ",":
            self.tokens.take()
            operands.append(self._operand(registers))
        return operands

    def _operand(self, registers: dict[str, int | None]) -> str:
        return self._operand_after(self.tokens.take("name"), registers)

    def _operand_after(self, name: str, registers: dict[str, int | None]) -> str:
        if name not in registers:
            raise _Refused
        if self.tokens.peek() != "[":
            return name
        self.tokens.take()
        index = int(self.tokens.take("int"))
        self.tokens.take("punct", "]")
        size = registers[name]
        if size is None or index >= size:
            raise _Refused  # the reference parser words the error
        return f"{name}[{index}]"

    def _parameter(self) -> str:
        """`[-]float` as written, or `[-][N*]pi[*K][/M]` as its value; integers go to the reference parser
        (it keeps them as ints, which the Rust parser refuses for angles)."""
        tokens = self.tokens
        minus = tokens.peek() == "-"
        if minus:
            tokens.take()
        if tokens.peek() not in _PI and tokens.peek(1) != "*":
            return ("-" if minus else "") + tokens.take("float")
        factor: float | int | None = None
        if tokens.peek() not in _PI:
            factor = _number(tokens.take())
            tokens.take("punct", "*")
        tokens.take("name")  # pi, checked above or by the `*` that must precede it
        if tokens.tokens[tokens.index - 1][1] not in _PI:
            raise _Refused
        # Computed in the order qasm3.loads computes it, so the value is bit-for-bit the same.
        value: float = -math.pi if minus else math.pi
        if factor is not None:
            value = (-factor if minus else factor) * math.pi
        if tokens.peek() == "*":
            tokens.take()
            value = value * _number(tokens.take())
        if tokens.peek() == "/":
            tokens.take()
            divisor = _number(tokens.take())
            if divisor == 0:
                raise _Refused
            value = value / divisor
        if not math.isfinite(value):
            raise _Refused
        return repr(value)


def _number(text: str) -> float | int:
    if not text[:1].isdigit():
        raise _Refused
    return float(text) if any(c in text for c in ".eE") else int(text)
