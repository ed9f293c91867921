"""The last few circuits the simulation child parsed, kept ready to run again.

Researchers send the same circuit text over and over: an optimizer loop (VQE, QAOA) submits its
ansatz with new `parameters` or `observables` each step, a notebook re-runs a cell. Parsing,
checking and unrolling a 140-gate, 12-qubit ansatz takes 3-7 ms, as long as simulating it; a
text seen recently skips all of it.

A circuit is kept under its whole text and its owner (the API key that sent it), so a hit is
exactly what parsing it again would give, and one owner's circuits never answer (faster) for
another's: a task's timing must not tell whether someone else sent the same text. Only circuits
that parsed, passed the limits and unrolled are kept, as a copy; every task gets its own copy
of the circuit it runs, so nothing a task does to it reaches the next one. What the executor derives
from a kept circuit for expectation values (its state before the final measurements, and that with
its single-qubit gates merged) is kept with it, made once, and likewise only ever run as a copy.
The cache is small and holds short texts only: what it keeps counts against the child's memory limit.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from qiskit import QuantumCircuit

CACHED_CIRCUITS = 8
# A text longer than this is not kept (its circuit is large, and its simulation is rarely short).
CACHED_TEXT_CHARS = 20_000


@dataclass(frozen=True)
class Parsed:
    """A circuit text parsed and checked: the circuit as parsed, in Aer's gates, and its facts."""

    circuit: QuantumCircuit  # as parsed: its parameters are the ones a sweep binds (only read)
    prepared: QuantumCircuit  # what runs; the same object when nothing needed unrolling
    facts: dict[str, Any]  # describe(): width, depth, the drawing
    measures: bool
    # Circuits derived from `prepared` on a task's first need of them (the state before the final
    # measurements, its single-qubit runs merged), kept with it: shared by every copy, and never
    # changed once in (a task runs a copy of them).
    derived: dict[str, QuantumCircuit] = field(default_factory=dict)


class CircuitCache:
    """Least recently used first out, at most CACHED_CIRCUITS texts."""

    def __init__(self, size: int = CACHED_CIRCUITS) -> None:
        self.size = size
        self._kept: OrderedDict[tuple[str, str], Parsed] = OrderedDict()

    def get(self, text: str, owner: str = "") -> Parsed | None:
        """A copy of what was kept for this text sent by this owner (an API key's name), or None."""
        key = (owner, text)
        kept = self._kept.get(key)
        if kept is None:
            return None
        self._kept.move_to_end(key)
        return _copied(kept)

    def put(self, text: str, parsed: Parsed, owner: str = "") -> None:
        if len(text) > CACHED_TEXT_CHARS or self.size < 1:
            return
        key = (owner, text)
        self._kept[key] = _copied(parsed)
        self._kept.move_to_end(key)
        while len(self._kept) > self.size:
            self._kept.popitem(last=False)


def _copied(parsed: Parsed) -> Parsed:
    prepared = parsed.prepared.copy()
    circuit = prepared if parsed.circuit is parsed.prepared else parsed.circuit
    return Parsed(circuit, prepared, dict(parsed.facts), parsed.measures, parsed.derived)
