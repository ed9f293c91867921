"""Typed dependencies for the routes."""

from typing import Annotated

from fastapi import Depends, Request

from api_server.waiters import CompletionWatcher
from shared.config import Settings
from shared.store import Store


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_watcher(request: Request) -> CompletionWatcher:
    return request.app.state.watcher


StoreDep = Annotated[Store, Depends(get_store)]
WatcherDep = Annotated[CompletionWatcher, Depends(get_watcher)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
