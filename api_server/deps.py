"""Typed dependencies for the routes.

They are `async def` although they only read the app's state: FastAPI runs a plain `def`
dependency in a worker thread, and that hop, per dependency and per request, cost more than the
read behind a task view."""

from typing import Annotated

from fastapi import Depends, Request

from api_server.waiters import CompletionWatcher
from shared.config import Settings
from shared.store import Store


async def get_store(request: Request) -> Store:
    return request.app.state.store


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_watcher(request: Request) -> CompletionWatcher:
    return request.app.state.watcher


StoreDep = Annotated[Store, Depends(get_store)]
WatcherDep = Annotated[CompletionWatcher, Depends(get_watcher)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
