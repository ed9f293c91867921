"""The example circuit the docs, the dashboard's form, the worker's warm-up and the tests all use."""

BELL_QASM3 = """OPENQASM 3.0;
include "stdgates.inc";
qubit[2] q;
bit[2] c;
h q[0];
cx q[0], q[1];
c = measure q;
"""
