"""The worker's parser: the fast path gives exactly the circuits qiskit.qasm3.loads gives."""

from __future__ import annotations

import pytest
from qiskit import qasm3

from bench.circuits import BELL, qft, random_circuit
from worker import executor

HEADER = 'OPENQASM 3.0;\ninclude "stdgates.inc";\n'

FAST = {
    "bell": BELL,
    "short header": BELL.replace("OPENQASM 3.0;", "OPENQASM 3;"),
    "qft-8 with pi/2^k": qft(8),
    "pi expressions": HEADER + "qubit[2] q;\nbit[2] c;\nrz(-pi/4) q[0];\nrx(2*pi/3) q[0];\nry(pi) q[0];\n"
    "rz(-2*pi/3) q[1];\ncp(pi*0.5/3) q[0], q[1];\nrz( pi / 8 ) q[1];\nc = measure q;\n",
    "unicode pi": HEADER + "qubit[1] q;\nbit[1] c;\nrz(π/2) q[0];\nc[0] = measure q[0];\n",
    "random 6 qubits": random_circuit(6, 200, seed=3),
    "barrier, single-bit measures": HEADER + "qubit[2] q;\nbit[2] c;\nh q[0];\nbarrier q;\n"
    "c[0] = measure q[0];\nc[1] = measure q[1];\n",
    "comments": HEADER + "// a comment with gate and for in it\nqubit[1] q; /* if */\nbit[1] c;\nx q[0];\n"
    "c[0] = measure q[0];\n",
}

REFERENCE_ONLY = {
    "gate definition": HEADER + "gate g a { h a; }\nqubit[1] q;\nbit[1] c;\ng q[0];\nc[0] = measure q[0];\n",
    "for loop": HEADER + "qubit[1] q;\nbit[1] c;\nfor int i in [0:3] { x q[0]; }\nc[0] = measure q[0];\n",
    "modifier": HEADER + "qubit[2] q;\nbit[2] c;\nctrl @ x q[0], q[1];\nc = measure q;\n",
    # The Rust parser refuses these today; they must still parse, through the reference parser.
    "u3 gate": HEADER + "qubit[1] q;\nbit[1] c;\nu3(pi/2, 0, pi) q[0];\nc[0] = measure q[0];\n",
    "reset": HEADER + "qubit[1] q;\nbit[1] c;\nreset q;\nc[0] = measure q[0];\n",
    "pi in a sum": HEADER + "qubit[1] q;\nbit[1] c;\nrz(pi + 1) q[0];\nc[0] = measure q[0];\n",
}


@pytest.mark.parametrize("name", list(FAST))
def test_fast_path_is_taken_and_identical(name: str, capfd: pytest.CaptureFixture[str]) -> None:
    text = FAST[name]
    fast = executor._fast_parse(text)
    assert fast is not None, "the fast parser should handle this circuit"
    assert fast == qasm3.loads(text.replace("π", "pi"))
    assert executor.parse(text) == fast


@pytest.mark.parametrize("name", list(REFERENCE_ONLY))
def test_everything_else_goes_to_the_reference_parser(name: str) -> None:
    text = REFERENCE_ONLY[name]
    assert executor._fast_parse(text) is None
    assert executor.parse(text) == qasm3.loads(text)


def test_fast_parser_failures_fall_back_silently(capfd: pytest.CaptureFixture[str]) -> None:
    broken = HEADER + "qubit[2] q;\nh q[0]\ncx q[0], q[1];\n"
    with pytest.raises(executor.TaskError, match=r"QASM3ParsingError: line 5:0 missing ';' at 'cx'"):
        executor.parse(broken)
    out, _ = capfd.readouterr()
    assert out == "", "the Rust parser's diagnostics must not reach the worker's stdout"
