"""What running one task produced, as the simulation child returns it and the worker records it.

No qiskit here: the worker's parent process reads these too.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from shared.models import RunDetails


class Outcome(enum.Enum):
    COUNTS = "counts"
    ERROR = "error"
    TIMEOUT = "timeout"
    CRASHED = "crashed"
    ABORTED = "aborted"


@dataclass(frozen=True)
class RunResult:
    """Counts or a one-line error, and what was learned about the circuit on the way."""

    outcome: Outcome
    counts: dict[str, int] | None = None
    # What the task produced beyond counts: memory, expectation values, or a sweep's results.
    output: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    details: RunDetails = field(default_factory=RunDetails)
    # The child hit its memory limit from inside (a MemoryError): it should be replaced.
    memory_exceeded: bool = False
