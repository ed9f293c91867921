"""The task record, its states, and the other records the store hands out."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class TaskStatus(enum.StrEnum):
    """Life cycle: submitted -> pending -> completed | failed | cancelled."""

    SUBMITTED = "submitted"
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})


class LeaseStatus(enum.StrEnum):
    """What a lease renewal found."""

    HELD = "held"
    LOST = "lost"
    CANCEL_REQUESTED = "cancel_requested"


@dataclass(frozen=True)
class TaskSummary:
    """A task without its circuit or result: what lists show."""

    id: str
    status: TaskStatus
    shots: int
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    num_qubits: int | None = None
    seq: int = 0
    tags: dict[str, str] | None = None
    batch_id: str | None = None
    owner: str = ""  # the name of the API key that submitted it; "" when the service is open


@dataclass(frozen=True)
class Task:
    """One row of the tasks table, as the store returns it (the circuit text is fetched apart)."""

    id: str
    status: TaskStatus
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
    num_qubits: int | None = None
    depth: int | None = None
    duration_ms: float | None = None
    parse_ms: float | None = None
    transpile_ms: float | None = None
    cancel_requested: bool = False
    options: dict[str, Any] | None = None
    output: dict[str, Any] | None = None
    tags: dict[str, str] | None = None
    batch_id: str | None = None
    owner: str = ""


@dataclass(frozen=True)
class NewTask:
    """What a submission stores: the circuit, how to run it, and its labels."""

    circuit: str
    shots: int
    seed: int | None = None
    options: dict[str, Any] | None = None
    tags: dict[str, str] | None = None
    owner: str = ""  # the submitting key's name; fair share takes turns between owners


def sweep_points(parameters: dict[str, Any] | None) -> int:
    """How many points a task runs: its parameter arrays' length (they share one), or 1."""
    for given in (parameters or {}).values():
        if isinstance(given, list):
            return len(given)
    return 1


@dataclass(frozen=True)
class Batch:
    """A batch and where its tasks stand."""

    id: str
    created_at: float
    total: int
    states: dict[TaskStatus, int]
    tags: dict[str, str] | None = None
    finished_at: float | None = None  # when its last task finished, once every one has
    owner: str = ""

    @property
    def done(self) -> bool:
        return sum(n for state, n in self.states.items() if state.is_terminal) == self.total


class SubmitOutcome(enum.Enum):
    """What a submission with an Idempotency-Key did."""

    CREATED = "created"
    REPLAYED = "replayed"  # the key's first request, with the same body: its task, nothing new
    CONFLICT = "conflict"  # the key was used with a different body
    QUEUE_FULL = "queue_full"  # MAX_QUEUED_BYTES: nothing stored


@dataclass(frozen=True)
class Claim:
    """A task a worker has claimed: what it needs to run it and to prove it still owns it."""

    task_id: str
    circuit: str
    shots: int
    seed: int | None
    attempt: int
    created_at: float
    options: dict[str, Any] | None = None
    owner: str = ""


@dataclass(frozen=True)
class RunDetails:
    """What the simulation learned about the circuit, stored beside the outcome."""

    num_qubits: int | None = None
    depth: int | None = None
    duration_ms: float | None = None
    parse_ms: float | None = None
    transpile_ms: float | None = None
    diagram: str | None = None


@dataclass(frozen=True)
class Finish:
    """How a worker leaves a claimed task: a final state, or SUBMITTED to put it back in the queue
    without spending the attempt (a shutdown, or a claim it did not start)."""

    claim: Claim
    status: TaskStatus
    now: float
    started_at: float | None = None  # when the simulation really started (a claim may wait its turn)
    result: dict[str, int] | None = None
    output: dict[str, Any] | None = None
    error: str = ""
    details: RunDetails = field(default_factory=RunDetails)


@dataclass(frozen=True)
class CancelOutcome:
    """The answer to a cancel request: the task's state after it, and whether it changed anything."""

    status: TaskStatus
    changed: bool


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    host: str
    pid: int
    started_at: float
    last_heartbeat: float
    task_id: str | None = None


@dataclass(frozen=True)
class Histogram:
    """Cumulative buckets as Prometheus wants them: [(upper bound, count)], +Inf last."""

    buckets: list[tuple[float, int]]
    total: float
    count: int


@dataclass(frozen=True)
class QueueStats:
    """Everything /health and /metrics show, read from the database so every process agrees."""

    counts: dict[TaskStatus, int]
    submitted_total: int
    finished_total: dict[TaskStatus, int]
    queue_wait: Histogram
    run_time: Histogram
    workers: list[WorkerInfo] = field(default_factory=list)


@dataclass(frozen=True)
class ApiKey:
    """An API key's record; the token itself is never stored, only its hash."""

    id: str
    name: str
    admin: bool
    max_queued: int | None
    created_at: float
    last_used_at: float | None = None
    revoked_at: float | None = None


@dataclass(frozen=True)
class KeyLookup:
    """What a bearer token's hash found: whether the service has keys at all, and the matching key."""

    keys_exist: bool
    key: ApiKey | None = None


@dataclass(frozen=True)
class Usage:
    """What one owner used: tasks submitted, shots run and simulation seconds."""

    submitted: int = 0
    shots: int = 0
    simulation_seconds: float = 0.0


@dataclass(frozen=True)
class OwnerUsage:
    owner: str
    today: Usage
    total: Usage
