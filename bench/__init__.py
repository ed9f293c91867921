"""Benchmarks: `make bench`. Never asserted in tests; every figure is set beside a baseline from the same run."""
