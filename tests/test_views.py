"""The task view built by hand matches its documented schema exactly (pure logic, no service)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api_server.schemas import TaskPublic
from api_server.views import public_view
from shared.models import Task, TaskStatus

pytestmark = pytest.mark.database_independent


@pytest.mark.parametrize(
    "task",
    [
        Task(id="a", status=TaskStatus.SUBMITTED, shots=10, seed=None, created_at=1764302400.0),
        Task(
            id="b",
            status=TaskStatus.COMPLETED,
            shots=10,
            seed=7,
            created_at=1764302400.123456,
            started_at=1764302400.2,
            finished_at=1764302401.0,
            result={"00": 4, "11": 6},
            attempts=1,
            num_qubits=2,
            depth=3,
            duration_ms=1.23456,
            parse_ms=0.1,
            transpile_ms=0.0,
        ),
        Task(id="c", status=TaskStatus.PENDING, shots=1, seed=0, created_at=5.5, cancel_requested=True, attempts=2),
    ],
    ids=["submitted", "completed", "pending-cancel"],
)
def test_view_is_what_the_schema_would_serialise(task: Task) -> None:
    view = public_view(task)
    assert None not in view.values()
    model = TaskPublic.model_validate(view)
    assert model.model_dump(mode="json", exclude_none=True) == view
    assert model.created_at == datetime.fromtimestamp(task.created_at, tz=UTC)
    assert view["created_at"].endswith("Z")
