"""Typed dependencies for the routes."""

from typing import Annotated

from fastapi import Depends, Request

from shared.config import Settings
from shared.store import Store


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
