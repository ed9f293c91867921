"""The task record and its states."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class TaskStatus(str, enum.Enum):
    """Life cycle: submitted -> pending -> completed | failed."""

    SUBMITTED = "submitted"
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED)


@dataclass(frozen=True)
class Task:
    """One row of the tasks table, as the store returns it."""

    id: str
    status: TaskStatus
    circuit: str
    shots: int
    seed: int | None
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    result: dict[str, int] | None = None
    error: str | None = None
    attempts: int = 0
    worker_id: str | None = None
    lease_expires_at: float | None = None

    def public_fields(self) -> dict[str, Any]:
        """The fields a client may see, without the circuit text."""
        return {
            "task_id": self.id,
            "status": self.status.value,
            "shots": self.shots,
            "seed": self.seed,
            "attempts": self.attempts or None,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "result": self.result,
            "error": self.error,
        }


@dataclass(frozen=True)
class Claim:
    """A task a worker has claimed: what it needs to run it and to prove it still owns it."""

    task_id: str
    circuit: str
    shots: int
    seed: int | None
    attempt: int
    created_at: float
