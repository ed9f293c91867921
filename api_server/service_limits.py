"""GET /limits: the limits this service enforces, read from its settings (no database)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api_server.auth import get_caller
from api_server.deps import SettingsDep
from api_server.schemas import Limits

router = APIRouter(dependencies=[Depends(get_caller)])


@router.get("/limits", response_model=Limits, summary="The limits this service enforces on circuits and requests")
def limits(settings: SettingsDep) -> Limits:
    """What a client needs to size its requests: qubits, shots, batch size, sweep points and the rest."""
    return Limits(**{name: getattr(settings, name) for name in Limits.model_fields})
