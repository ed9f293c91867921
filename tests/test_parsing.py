"""The parsing policy, in-process: what the fast parser may see, gate parity, limits and messages."""

from __future__ import annotations

from typing import Any

import pytest
from qiskit import QuantumCircuit, qasm3

from worker import circuit_limits, executor, fastpath, parsing
from worker.circuit_limits import CircuitLimits, LimitExceeded
from worker.messages import TaskError

pytestmark = pytest.mark.database_independent

HEADER = 'OPENQASM 3.0;\ninclude "stdgates.inc";\n'

# Every gate of stdgates.inc, with its parameter and qubit counts.
STDGATES = {
    **dict.fromkeys(["x", "y", "z", "h", "s", "sdg", "t", "tdg", "sx", "id"], (0, 1)),
    **dict.fromkeys(["p", "phase", "rx", "ry", "rz", "u1"], (1, 1)),
    "u2": (2, 1),
    "u3": (3, 1),
    **dict.fromkeys(["cx", "CX", "cy", "cz", "ch", "swap"], (0, 2)),
    **dict.fromkeys(["cp", "cphase", "crx", "cry", "crz"], (1, 2)),
    "cu": (4, 2),
    **dict.fromkeys(["ccx", "cswap"], (0, 3)),
}


def exact(circuit: QuantumCircuit) -> list[tuple[Any, ...]]:
    """Instructions with their parameters' types and reprs, so 1 and 1.0 or a drifted float differ."""
    return [
        (
            type(i.operation).__name__,
            i.operation.name,
            [(type(p).__name__, repr(p)) for p in i.operation.params],
            [circuit.find_bit(q).index for q in i.qubits],
            [circuit.find_bit(c).index for c in i.clbits],
        )
        for i in circuit.data
    ] + [("registers", [(r.name, r.size) for r in circuit.qregs], [(r.name, r.size) for r in circuit.cregs])]


def gate_circuit(gate: str, params: list[str]) -> str:
    n_params, n_qubits = STDGATES[gate]
    head = f"{gate}({', '.join(params[:n_params])})" if n_params else gate
    operands = ", ".join(f"q[{i}]" for i in range(n_qubits))
    return HEADER + f"qubit[3] q;\nbit[3] c;\nh q[0];\nh q[1];\n{head} {operands};\nc = measure q;\n"


SIMULATOR = executor.Simulator(max_memory_mb=4096, threads=1)


def counts(circuit: QuantumCircuit) -> dict[str, int]:
    """Counts as the worker gets them: unrolled where Aer lacks the gate, seeded."""
    return SIMULATOR.run(SIMULATOR.prepare(circuit), shots=500, seed=11, job=executor.Job())[0].counts


@pytest.mark.parametrize("gate", list(STDGATES))
def test_every_standard_gate_gives_the_reference_circuit_and_counts(gate: str) -> None:
    text = gate_circuit(gate, ["0.3", "-1.25", "2*pi/3", "pi"])
    reference = qasm3.loads(text)
    ours = parsing.parse(text)
    assert exact(ours) == exact(reference)
    assert counts(ours) == counts(reference)
    assert (fastpath.canonical_text(text) is not None) == (gate in fastpath.FAST_GATES)


@pytest.mark.parametrize("gate", list(fastpath.FAST_GATES))
def test_fast_gates_really_take_the_fast_path(gate: str) -> None:
    text = gate_circuit(gate, ["0.5", "-pi/4"])
    fast = parsing._fast_parse(text)
    assert fast is not None
    assert exact(fast) == exact(qasm3.loads(text))


@pytest.mark.parametrize(
    "parameter", ["pi", "-pi", "pi/2", "-pi/4", "2*pi/3", "-2*pi/3", "pi*0.5/3", "0.5*pi", " pi / 8 ", "1e-3", "-2."]
)
def test_pi_expressions_have_the_reference_value(parameter: str) -> None:
    text = HEADER + f"qubit[1] q;\nbit[1] c;\nrz({parameter}) q[0];\nc[0] = measure q[0];\n"
    assert fastpath.canonical_text(text) is not None
    assert exact(parsing.parse(text)) == exact(qasm3.loads(text))


@pytest.mark.parametrize(
    "text",
    [
        HEADER + "qubit[2] q;\nbit[2] c;\nh q[0];\ncx q[0], q[1];\nc = measure q;\n",
        "OPENQASM 3;\n" + HEADER[14:] + "qubit[2] q;\nbit[2] c;\nbarrier q;\nbarrier q[0], q[1];\nc = measure q;\n",
        'include "stdgates.inc";\nqubit q;\nbit b;\nqubit[1] r;\nh q;\nb = measure q;\n',
        HEADER + "// gate and for in a comment\nqubit[1] q; /* if */\nbit[1] c;\nx q[0];\nc[0] = measure q[0];\n",
        HEADER.replace("\n", "\r\n") + "qubit[1] q;\r\nbit[1] c;\r\nc[0] = measure q[0];\r\n",
    ],
)
def test_plain_circuits_take_the_fast_path_and_match(text: str) -> None:
    fast = parsing._fast_parse(text)
    assert fast is not None
    assert exact(fast) == exact(qasm3.loads(text))


@pytest.mark.parametrize(
    "text",
    [
        '#pragma /*\ninclude "/tmp/secret.inc";\n// */\n',
        'bit[2] d = "/*";\ninclude "/etc/passwd";\n// */\n',
        '²include "/etc/passwd";\n',
        'include "/etc/passwd";\n',
        'include²"/etc/passwd";\n',
        'bit[2] d = "//";\ninclude "/etc/passwd";\n',
        '/* a /* nested */ include "/etc/passwd"; */\nqubit[1] q;\n',
        '// comment\rinclude "/etc/passwd";\rqubit[1] q;\r',
        'include\n"/etc/passwd";\n',
        "include '/etc/passwd';\n",
        'include "stdgates.inc";\ninclude "stdgates.inc";\n',
        HEADER + "qubit[1] q;\nbit[1] c;\nrz(sin(0.5)) q[0];\n",  # these three made the Rust parser panic
        HEADER + "qubit[1] q;\nbit[1] c;\nrz(5 % 3) q[0];\n",
        HEADER + "qubit[1] q;\nbit[1] c;\nrz(1 << 2) q[0];\n",
        HEADER + "qubit[1] q;\nbit[1] c;\nrz(1) q[0];\n",  # an integer angle: the Rust parser refuses it
        HEADER + "qubit[1] q;\nbit[1] c;\nid q[0];\n",
        HEADER + "qubit[1] q;\nbarrier;\n",  # the Rust parser panics on a bare barrier
        HEADER + "qubit[1] x;\n",  # a register named like a gate
        HEADER + "qubit[2] q;\nh q[2];\n",
        HEADER + "qubit[1] q;\nrz(pi/0) q[0];\n",
        HEADER + "qubit[1] q;\nrz(" + "9" * 60 + ".0) q[0];\n",
    ],
)
def test_everything_outside_the_allow_list_goes_to_the_reference_parser(text: str) -> None:
    assert fastpath.canonical_text(text) is None


def test_the_rust_parser_only_ever_sees_the_standard_include() -> None:
    text = HEADER + "// include \"/etc/passwd\";\nqubit[1] q; /* include 'x' */\nbit[1] c;\nc[0] = measure q[0];\n"
    canonical = fastpath.canonical_text(text)
    assert canonical is not None
    assert canonical.count("include") == 1 and 'include "stdgates.inc";' in canonical
    assert "/" not in canonical.replace("stdgates.inc", "")


def test_parsers_print_nothing_to_stdout_or_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    for text in [
        HEADER + "qubit[2] q;\nh q[0]\ncx q[0], q[1];\n",
        HEADER + "qubit[1] q;\nbit[1] c;\nrz(sin(0.5)) q[0];\nc[0] = measure q[0];\n",
        HEADER + "qubit[1] q;\nfoo q[0];\n",
    ]:
        try:
            parsing.parse(text)
        except TaskError:
            pass
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_a_byte_order_mark_is_ignored() -> None:
    text = '\ufeffOPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\ncreg c[1];\nmeasure q -> c;\n'
    assert parsing.parse(text).num_qubits == 1


def test_a_five_thousand_digit_integer_is_named() -> None:
    text = HEADER + "qubit[1] q;\nbit[1] c;\nrz(" + "1" * 5000 + ") q[0];\nc[0] = measure q[0];\n"
    with pytest.raises(TaskError) as raised:
        parsing.parse(text)
    message = str(raised.value)
    assert message == (
        "ParseError: line 5: an integer literal of 5000 digits is too long; integers may have at most 4300 digits"
    )


def test_include_messages_name_the_file() -> None:
    with pytest.raises(TaskError, match=r'^IncludeNotAllowed: include "/etc/passwd" is not allowed'):
        parsing.parse('²include "/etc/passwd";\nqubit[1] q;\n')


LIMITS = CircuitLimits(max_qubits=64, max_clbits=32, max_loop_iterations=1000, max_unrolled_operations=5000)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("qubit[65] q;", "qubit register 'q' (line 1) declares 65 qubits; the limit is MAX_QUBITS=64"),
        ("qubit[1] q;\nbit[33] c;", "bit register 'c' (line 2) declares 33 bits; the limit is MAX_CLBITS=32"),
        ("qreg r[100];", "qubit register 'r' (line 1) declares 100 qubits; the limit is MAX_QUBITS=64"),
        ("creg r[100];", "bit register 'r' (line 1) declares 100 bits; the limit is MAX_CLBITS=32"),
        (
            "for uint i in [0:1:18446744073709551615] { x q[0]; }",
            "a for loop (line 1) runs 18446744073709551616 times; the limit is MAX_LOOP_ITERATIONS=1000",
        ),
        (
            "for int i in [0:1000] { x q[0]; }",
            "a for loop (line 1) runs 1001 times; the limit is MAX_LOOP_ITERATIONS=1000",
        ),
        (
            "gate g0 a { x a; }\n" + "".join(f"gate g{i} a {{ g{i - 1} a; g{i - 1} a; }}\n" for i in range(1, 41)),
            "gate 'g13' (line 14) expands to 8192 operations; the limit is MAX_UNROLLED_OPERATIONS=5000",
        ),
    ],
)
def test_sizes_in_the_text_are_refused_before_parsing(text: str, message: str) -> None:
    with pytest.raises(LimitExceeded) as raised:
        circuit_limits.check_text(text, LIMITS)
    assert str(raised.value) == message


def test_sizes_within_the_limits_pass() -> None:
    circuit_limits.check_text("qubit[64] q;\nbit[32] c;\nfor int i in [1:1000] { x q[0]; }\n// qubit[99] q;", LIMITS)


def test_parsed_circuits_are_measured_with_loops_and_gates_unrolled() -> None:
    native = frozenset({"x", "h", "measure"})
    text = HEADER + "gate g a { x a; x a; }\nqubit[1] q;\nbit[1] c;\nfor int i in [0:999] { g q[0]; g q[0]; g q[0]; }\n"
    circuit = qasm3.loads(text)
    with pytest.raises(LimitExceeded, match="unrolls to 6000 operations"):
        circuit_limits.check_circuit(circuit, LIMITS, native)
    circuit_limits.check_circuit(circuit, CircuitLimits(max_unrolled_operations=6000), native)


@pytest.mark.parametrize("name", ["bell", "qft-8", "random-6", "sweep-point", "ansatz-12"])
def test_the_benchmark_circuits_take_the_fast_path(name: str) -> None:
    from bench.circuits import BELL, ansatz, qft, random_circuit, sweep_circuit

    text = {
        "bell": BELL,
        "qft-8": qft(8),
        "random-6": random_circuit(6, 200, seed=3),
        "sweep-point": sweep_circuit((1.25, -3.0e-05)),
        "ansatz-12": ansatz(12, 4, seed=3),
    }[name]
    fast = parsing._fast_parse(text)
    assert fast is not None
    assert exact(fast) == exact(qasm3.loads(text))
