"""Outcome keys as Qiskit writes them: classical registers separated by a space, the last declared
leftmost, bit 0 of each register rightmost.

Qiskit's get_counts() and get_memory() build keys from the registers alone, so with loose bits
(`bit a;`, which the OpenQASM 3 importer keeps outside any register) different outcomes collided
and overwrote each other. Aer's raw outcomes are integers over every memory slot (slot i is
circuit.clbits[i]); here each loose bit is a group of its own, in declaration order, exactly as a
`bit[1] a;` would be.
"""

from __future__ import annotations

from typing import Any

from qiskit import QuantumCircuit


class KeyFormat:
    """How one circuit's raw outcomes become keys."""

    def __init__(self, circuit: QuantumCircuit) -> None:
        groups: list[list[int]] = []
        seen: dict[Any, list[int]] = {}
        self.loose = False
        for index, bit in enumerate(circuit.clbits):
            registers = circuit.find_bit(bit).registers
            if not registers:
                self.loose = True
                groups.append([index])
                continue
            register = registers[0][0]
            if register not in seen:
                seen[register] = []
                groups.append(seen[register])
            seen[register].append(index)
        self.groups = groups

    def key(self, raw: str) -> str:
        """One hexadecimal outcome (`0x5`) as a key (`1 01`)."""
        return self.key_of(int(raw, 16))

    def key_of(self, value: int) -> str:
        """One outcome, clbit i as bit i of value, as a key."""
        return " ".join("".join("1" if value >> i & 1 else "0" for i in reversed(g)) for g in reversed(self.groups))

    def counts(self, result: Any, experiment: int) -> dict[str, int]:
        if not self.loose:
            return dict(result.get_counts(experiment))
        counts: dict[str, int] = {}
        for raw, n in result.results[experiment].data.counts.items():
            key = self.key(raw)
            counts[key] = counts.get(key, 0) + n
        return counts

    def memory(self, result: Any, experiment: int) -> list[str]:
        if not self.loose:
            return list(result.get_memory(experiment))
        return [self.key(raw) for raw in result.results[experiment].data.memory]
