"""Request and response bodies of the batch endpoints."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from api_server.schemas import TaskCreate, TaskPublic
from api_server.task_options import Tags
from shared.examples import BELL_QASM3
from shared.models import TaskStatus


class BatchCreate(BaseModel):
    """Many submissions as one unit: all are stored, or none is."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "tasks": [{"circuit": BELL_QASM3, "shots": 100}, {"circuit": BELL_QASM3, "seed": 7}],
                    "tags": {"project": "vqe-h2"},
                }
            ]
        },
    )

    tasks: list[TaskCreate] = Field(
        min_length=1, description="Each exactly a POST /tasks body; 1 to MAX_BATCH_TASKS of them."
    )
    tags: Tags = Field(  # type: ignore[assignment]
        None,  # type: ignore[arg-type]
        description="Labels of the batch itself (each task keeps its own `tags`).",
        json_schema_extra={"additionalProperties": False},
    )


class BatchAccepted(BaseModel):
    """The stored batch: poll `Location` for its progress."""

    batch_id: str
    task_ids: list[str] = Field(description="In request order.")
    status: TaskStatus = Field(description="Always `submitted`.")


class BatchPublic(BaseModel):
    """Where a batch's tasks stand."""

    batch_id: str
    created_at: datetime
    tags: dict[str, str] | None = None
    total: int
    states: dict[TaskStatus, int] = Field(description="How many tasks are in each state.")
    done: bool = Field(description="True once every task is completed, failed or cancelled.")
    finished_at: datetime | None = Field(None, description="When the last task finished, once done.")
    owner: str | None = Field(None, description="Admin keys only: the name of the key that submitted it.")


class BatchTaskList(BaseModel):
    """One page of a batch's tasks, in request order, with their results."""

    items: list[TaskPublic]
    next_cursor: str | None = Field(None, description="Present while more tasks follow.")
