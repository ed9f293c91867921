"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr, field_validator

from api_server.task_options import NoiseSpec, Number, Observable, Tags, TaskOptions
from shared.config import Settings
from shared.examples import BELL_QASM3
from shared.models import TaskStatus

# Documentation only: the limits are checked against the app's own settings in the routes.
DEFAULT_MAX_SHOTS = Settings.model_fields["max_shots"].default
DEFAULT_SHOTS = Settings.model_fields["default_shots"].default
DEFAULT_MAX_CIRCUIT_BYTES = Settings.model_fields["max_circuit_bytes"].default
MAX_SEED = 2**63 - 1
# Longest a long-poll (`?wait=`) may hold a request, in seconds.
MAX_WAIT_SECONDS = 60
# Some non-whitespace character, and no NUL anywhere.
CIRCUIT_PATTERN = r"^[^\x00]*\S[^\x00]*$"


def _integral_number(value: Any) -> Any:
    """JSON has one number type: 10.0 is the integer 10 (as JSON Schema says); 1.5, "10" and true are not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Shots = Annotated[
    StrictInt,
    Field(
        ge=1, description=f"Number of shots, 1 to MAX_SHOTS (default {DEFAULT_MAX_SHOTS}); DEFAULT_SHOTS when left out."
    ),
    BeforeValidator(_integral_number),
]
Seed = Annotated[
    StrictInt,
    Field(
        ge=0, le=MAX_SEED, description="Aer's seed_simulator: the same circuit, shots and seed give identical counts."
    ),
    BeforeValidator(_integral_number),
]


class TaskCreate(TaskOptions):
    """A circuit to run, and optionally how (sweep, observables, memory, method, noise).

    Unknown fields are rejected, so a typo never runs with defaults."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"circuit": BELL_QASM3, "shots": 1024, "seed": 7},
                {
                    "circuit": 'OPENQASM 3.0;\ninclude "stdgates.inc";\ninput float theta;\nqubit[1] q;\nbit[1] c;\n'
                    "rx(theta) q[0];\nc[0] = measure q[0];\n",
                    "shots": 100,
                    "parameters": {"theta": [0.0, 1.5707963267948966, 3.141592653589793]},
                },
                {"circuit": BELL_QASM3, "observables": ["ZZ", "XX", [["ZI", 0.5], ["IZ", 0.5]]], "memory": True},
            ]
        },
    )

    circuit: StrictStr = Field(
        description="OpenQASM 3 or OpenQASM 2 source text (an `OPENQASM 2.0;` header selects OpenQASM 2). "
        'Only `include "stdgates.inc";` (3) or `include "qelib1.inc";` (2) may be included. '
        f"At most MAX_CIRCUIT_BYTES (default {DEFAULT_MAX_CIRCUIT_BYTES}) bytes of UTF-8.",
        # Documented for clients and fuzzers; enforced by the validator below with clearer messages.
        json_schema_extra={"minLength": 1, "maxLength": DEFAULT_MAX_CIRCUIT_BYTES, "pattern": CIRCUIT_PATTERN},
    )
    tags: Tags = Field(  # type: ignore[assignment]
        None,  # type: ignore[arg-type]
        description="Labels to find the task by (`GET /tasks?tag=key:value`): at most 16, keys of 1 to 64 "
        "letters, digits and `_.:-`, values of at most 256 characters.",
        examples=[{"project": "vqe-h2", "run": "7"}],
        json_schema_extra={"additionalProperties": False},
    )
    shots: Shots = Field(None, json_schema_extra={"default": DEFAULT_SHOTS})  # type: ignore[assignment]  # left out: DEFAULT_SHOTS
    seed: Seed | None = None

    @field_validator("shots", mode="before")
    @classmethod
    def _shots_not_null(cls, value: Any) -> Any:
        # Left out means DEFAULT_SHOTS; an explicit null is a mistake worth naming.
        if value is None:
            raise ValueError("must be an integer; leave the field out for DEFAULT_SHOTS")
        return value

    @field_validator("circuit")
    @classmethod
    def _circuit_is_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty or only whitespace")
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must be valid UTF-8 text (it contains an unpaired surrogate)") from None
        return value


class TaskAccepted(BaseModel):
    """The answer to a submission: poll `Location` for the outcome."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"task_id": "2f1c1f5e-8a8e-4c38-9a51-6a1d2c9e3b7a", "status": "submitted"}]}
    )

    task_id: str = Field(description="UUID4 of the new task.")
    status: TaskStatus = Field(description="Always `submitted`.")


class SweepPoint(BaseModel):
    """One point of a sweep: its parameter values and what the circuit gave there."""

    parameters: dict[str, float]
    counts: dict[str, int] | None = Field(None, description="Absent when the circuit measures nothing.")
    memory: list[str] | None = None
    expectation_values: list[float] | None = None


class TaskPublic(BaseModel):
    """A task as clients see it. Fields without a value are left out, never sent as null."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "task_id": "2f1c1f5e-8a8e-4c38-9a51-6a1d2c9e3b7a",
                    "status": "completed",
                    "shots": 1024,
                    "seed": 7,
                    "attempts": 1,
                    "created_at": "2026-11-28T04:05:06.123456Z",
                    "started_at": "2026-11-28T04:05:06.130112Z",
                    "finished_at": "2026-11-28T04:05:06.140845Z",
                    "result": {"00": 503, "11": 521},
                }
            ]
        }
    )

    task_id: str
    status: TaskStatus = Field(description="submitted -> pending -> completed | failed | cancelled")
    shots: int
    seed: int | None = Field(None, description="Present when the submission gave one.")
    attempts: int | None = Field(
        None, description="How many times a worker has claimed the task; present once claimed."
    )
    created_at: datetime = Field(description="RFC 3339, UTC.")
    started_at: datetime | None = Field(None, description="When the current attempt began (RFC 3339, UTC).")
    finished_at: datetime | None = Field(None, description="RFC 3339, UTC; completed and failed tasks only.")
    result: dict[str, int] | None = Field(
        None, description="Measurement counts as Aer's get_counts() gives them; completed only."
    )
    error: str | None = Field(None, description="One line, `<ExceptionType>: <message>`; failed only.")
    num_qubits: int | None = Field(None, description="Width of the parsed circuit, once a worker has parsed it.")
    depth: int | None = Field(None, description="Depth of the parsed circuit, once a worker has parsed it.")
    duration_ms: float | None = Field(None, description="Simulation time in milliseconds, once simulated.")
    parse_ms: float | None = Field(None, description="Time the worker took to parse the circuit, in milliseconds.")
    transpile_ms: float | None = Field(
        None, description="Time spent unrolling user-defined gates for Aer (0 when none), in milliseconds."
    )
    cancel_requested: bool | None = Field(
        None, description="True while a cancel request waits for the worker to stop the task."
    )
    # The options the task was submitted with (echoed only when given) and what they produced.
    parameters: dict[str, Number | list[Number]] | None = Field(None, description="As submitted.")
    observables: list[Observable] | None = Field(None, description="As submitted.")
    method: str | None = Field(None, description="As submitted.")
    noise: NoiseSpec | None = Field(None, description="As submitted.")
    memory: list[str] | bool | None = Field(
        None,
        description="Every shot's outcome in shot order, keyed like `result`, once completed (`true` before, "
        "and for a sweep, whose points hold their own).",
    )
    expectation_values: list[float] | None = Field(
        None, description="One exact expectation value per observable, in order (not a sweep)."
    )
    results: list[SweepPoint] | None = Field(None, description="A sweep's points, in order; a sweep has no `result`.")
    tags: dict[str, str] | None = Field(None, description="As submitted.")
    batch_id: str | None = Field(None, description="The batch the task was submitted in, if any.")
    owner: str | None = Field(None, description="Admin keys only: the name of the key that submitted it.")


class TaskListItem(BaseModel):
    """A task in a list: no circuit text and no result."""

    task_id: str
    status: TaskStatus
    shots: int
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    num_qubits: int | None = None
    tags: dict[str, str] | None = None
    batch_id: str | None = None
    owner: str | None = Field(None, description="Admin keys only: the name of the key that submitted it.")


class TaskList(BaseModel):
    """One page of tasks, newest first. Pass `next_cursor` back as `cursor` for the next page."""

    items: list[TaskListItem]
    next_cursor: str | None = Field(None, description="Present while older tasks remain.")


class CircuitView(BaseModel):
    """The submitted text, and Qiskit's text drawing once a worker has parsed a small enough circuit."""

    task_id: str
    circuit: str
    diagram: str | None = None


class Conflict(BaseModel):
    """The task is already finished; nothing was changed."""

    detail: str
    status: TaskStatus


class WorkerView(BaseModel):
    worker_id: str
    host: str
    pid: int
    started_at: datetime
    last_heartbeat: datetime
    task_id: str | None = None


class Message(BaseModel):
    """An error with a one-line explanation."""

    detail: str


class FieldError(BaseModel):
    loc: list[str | int] = Field(description='Where the problem is, e.g. ["body", "shots"].')
    msg: str = Field(description="What is wrong, starting with the field's name.")
    type: str


class ValidationMessage(BaseModel):
    """A rejected request: one entry per problem, each naming its field."""

    detail: list[FieldError]


class Health(BaseModel):
    """Database reachability, queue depth by state, and the workers heard from within LEASE_SECONDS
    (once the service has API keys, queue and workers only for a request with a key)."""

    status: str
    database: str
    queue: dict[TaskStatus, int] | None = None
    workers: list[WorkerView] | None = None


class UsageFigures(BaseModel):
    tasks_submitted: int
    shots: int = Field(description="Shots of completed tasks (a sweep's at every point).")
    simulation_seconds: float = Field(description="Time spent simulating, completed and failed tasks.")


class KeyUsage(BaseModel):
    owner: str | None = Field(
        None, description="The key's name (absent for tasks submitted while the service was open)."
    )
    today: UsageFigures = Field(description="Since midnight UTC.")
    total: UsageFigures


class UsageReport(BaseModel):
    """What keys used: the caller's own key, or every key for an admin key."""

    items: list[KeyUsage]


class Limits(BaseModel):
    """The limits this service enforces, so a client can size its requests (each is the setting of
    the same name in upper case)."""

    max_qubits: int = Field(description="Most qubits a circuit may declare.")
    max_clbits: int = Field(description="Most classical bits a circuit may declare.")
    max_shots: int = Field(description="Most shots a task may ask for.")
    default_shots: int = Field(description="Shots of a task that does not say.")
    max_circuit_bytes: int = Field(description="Largest circuit text, in UTF-8 bytes.")
    max_batch_tasks: int = Field(description="Most tasks of one batch.")
    max_batch_bytes: int = Field(description="Largest POST /batches body, in bytes.")
    max_sweep_points: int = Field(description="Most points of one sweep.")
    max_observables: int = Field(description="Most observables of one task.")
    max_memory_shots: int = Field(description="Most per-shot outcomes one task may ask for (shots x points).")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Message, "description": "The service has API keys and the request has no accepted one."},
    429: {
        "model": Message,
        "description": "Past RATE_LIMIT_PER_SECOND, or (a submission) the key's max_queued; retry after `Retry-After`.",
    },
    422: {"model": ValidationMessage, "description": "A field is missing, has the wrong type or is out of range."},
    503: {"model": Message, "description": "The database is busy or unreachable; retry after `Retry-After` seconds."},
}

# 403 and 415 are answered by api_server.csrf before any route runs; 507 by api_server.errors.
WRITE_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: {"model": Message, "description": "Sent by a page on another origin (`Origin`, `Sec-Fetch-Site`)."},
    415: {"model": Message, "description": "The body is not sent as `Content-Type: application/json`."},
    507: {
        "model": Message,
        "description": "The disk holding the database is full: nothing was stored; retry after `Retry-After` seconds.",
    },
}
