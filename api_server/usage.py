"""GET /usage: tasks submitted, shots run and simulation seconds, per key, today and in total."""

from __future__ import annotations

import time

from fastapi import APIRouter

from api_server.auth import CallerDep
from api_server.deps import StoreDep
from api_server.schemas import ERROR_RESPONSES, KeyUsage, UsageFigures, UsageReport
from shared.models import Usage

router = APIRouter()


def _figures(usage: Usage) -> UsageFigures:
    return UsageFigures(
        tasks_submitted=usage.submitted, shots=usage.shots, simulation_seconds=round(usage.simulation_seconds, 6)
    )


@router.get(
    "/usage",
    response_model=UsageReport,
    response_model_exclude_none=True,
    summary="What keys used, today (UTC) and in total",
    responses=ERROR_RESPONSES,
)
def usage(caller: CallerDep, store: StoreDep) -> UsageReport:
    """The caller's key; an admin key (or anyone while the service is open) sees every key."""
    found = store.usage(None if caller.sees_all else caller.name, time.time())
    if not found and not caller.sees_all:
        return UsageReport(items=[KeyUsage(owner=caller.name, today=_figures(Usage()), total=_figures(Usage()))])
    return UsageReport(
        items=[
            KeyUsage(owner=item.owner or None, today=_figures(item.today), total=_figures(item.total)) for item in found
        ]
    )
