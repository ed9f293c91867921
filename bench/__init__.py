"""Benchmarks: `make bench`. Never asserted in tests; every figure is a ratio to a baseline run in the same invocation."""
