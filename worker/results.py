"""What running one task produced, as the simulation child returns it and the worker records it.

No qiskit here: the worker's parent process reads these too.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol

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


@dataclass(frozen=True)
class SimulationJob:
    """One claimed task as the simulation child runs it."""

    circuit: str
    shots: int
    seed: int | None = None
    options: dict[str, Any] | None = None
    owner: str = ""  # the submitting key's name: what the child keeps of one owner's circuits is its own


class RunControl(Protocol):
    """What the simulation asks the worker while it runs a chunk of jobs, by their index."""

    def started(self, index: int, together: int = 1) -> None:
        """The job began to run (the one before it has answered), in one Aer call with `together`
        jobs in all."""

    def should_abort(self, index: int) -> bool:
        """Stop the running job now (cancel requested, lease lost, shutdown past its grace)."""

    def should_skip(self, index: int) -> bool:
        """Do not start this job (cancel requested, lease lost, shutting down, or handed back)."""

    def tick(self) -> None:
        """Called every few tens of milliseconds while a job runs."""
