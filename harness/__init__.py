"""The process harness the tests and the benchmark share: real services on fresh databases."""
