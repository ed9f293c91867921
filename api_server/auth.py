"""Who is calling: an API key sent as `Authorization: Bearer <key>`, or anyone while the service is open.

The service is open (as for one person on one machine) until the first key is created; from then
on every request but the public ones (GET /health's short form, the docs, the dashboard's static
shell) needs an unrevoked key. The key is looked up on every request, so a revocation holds at once
on every API process. Only a token's SHA-256 is stored: tokens are 256 random bits, so a plain
hash is as good as a slow one, and the lookup stays one indexed read.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.concurrency import run_in_threadpool

from api_server.deps import SettingsDep, StoreDep
from api_server.tokens import hash_token
from shared.config import Settings
from shared.errors import StoreError
from shared.store import Store

logger = logging.getLogger(__name__)

# last_used_at is written at most this often per key (a write per request would be a hot row).
LAST_USED_RESOLUTION_SECONDS = 60.0
CHALLENGE = {"WWW-Authenticate": "Bearer"}
# How long an API process trusts that the service has no key (see OpenMode).
OPEN_MODE_SECONDS = 1.0


@dataclass(frozen=True)
class Caller:
    """The key a request came with (its name owns what it submits), or anyone in open mode."""

    name: str
    admin: bool = False
    max_queued: int | None = None
    open: bool = False

    @property
    def sees_all(self) -> bool:
        """Admin keys, and everyone while the service is open, see every owner's tasks."""
        return self.admin or self.open

    def may_see(self, owner: str) -> bool:
        return self.sees_all or owner == self.name

    def quota(self, settings: Settings) -> int | None:
        """Most tasks submitted or pending this caller may have: the key's own, or DEFAULT_MAX_QUEUED."""
        if self.open:
            return None
        return self.max_queued if self.max_queued is not None else settings.default_max_queued


ANYONE = Caller("", open=True)


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer` header, or None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def identify(store: Store, token: str | None) -> Caller | str:
    """The caller, or why the request is refused (one line)."""
    lookup = store.find_key(hash_token(token) if token else "")
    if not lookup.keys_exist:
        return ANYONE
    if token is None:
        return "this service needs an API key: send it as the header Authorization: Bearer <key>"
    key = lookup.key
    if key is None:
        return "this API key is not known here; ask the operator for one"
    if key.revoked_at is not None:
        return f"the API key {key.name!r} has been revoked"
    try:
        store.touch_key(key.id, time.time(), LAST_USED_RESOLUTION_SECONDS)
    except StoreError as error:
        # Bookkeeping: a full disk or a busy database must not refuse a read. The next request
        # writes it (last_used_at is still stale).
        logger.warning("last use of API key %r not recorded: %s", key.name, error)
    return Caller(key.name, admin=key.admin, max_queued=key.max_queued)


class OpenMode:
    """This process's memory that the service had no key a moment ago.

    While the service is open every request would otherwise read the keys table, and in a thread
    of its own (an async route's dependency may not block): about a third of a task read's cost.
    So "no key at all" is trusted for OPEN_MODE_SECONDS: the first key closes the service within
    that long on every API process. Once keys exist nothing is remembered, since revocations must
    hold at once, and keys are never deleted, so the service never reopens."""

    def __init__(self) -> None:
        self.until = 0.0

    def known(self) -> bool:
        return time.monotonic() < self.until

    def seen(self) -> None:
        self.until = time.monotonic() + OPEN_MODE_SECONDS


async def _identify(request: Request, store: Store) -> Caller | str:
    open_mode: OpenMode = request.app.state.open_mode
    if open_mode.known():
        return ANYONE
    found = await run_in_threadpool(identify, store, bearer_token(request))
    if found is ANYONE:
        open_mode.seen()
    return found


async def optional_caller(request: Request, store: StoreDep) -> Caller | None:
    """The caller, or None when the request carries no key the service accepts (no error)."""
    found = await _identify(request, store)
    return found if isinstance(found, Caller) else None


class RateLimiter:
    """RATE_LIMIT_PER_SECOND per key (per client address while the service is open), in this
    process's memory: with N API processes behind a balancer a key may make up to N times as many."""

    def __init__(self, per_second: int | None) -> None:
        self.item = RateLimitItemPerSecond(per_second) if per_second else None
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def retry_after(self, who: str) -> int | None:
        """None when the request may go on; else the seconds until it may."""
        if self.item is None or self.limiter.hit(self.item, who):
            return None
        reset = self.limiter.get_window_stats(self.item, who).reset_time
        return max(1, math.ceil(reset - time.time()))


async def get_caller(request: Request, store: StoreDep, settings: SettingsDep) -> Caller:
    """The caller of a route that needs one: 401 without an accepted key, 429 past the rate limit."""
    found = await _identify(request, store)
    if not isinstance(found, Caller):
        raise HTTPException(401, found, headers=CHALLENGE)
    who = found.name if not found.open else f"address {request.client.host if request.client else '?'}"
    wait = request.app.state.rate_limiter.retry_after(who)
    if wait is not None:
        raise HTTPException(
            429,
            f"more than RATE_LIMIT_PER_SECOND={settings.rate_limit_per_second} requests in a second; "
            f"retry after {wait} s",
            headers={"Retry-After": str(wait)},
        )
    return found


CallerDep = Annotated[Caller, Depends(get_caller)]
MaybeCallerDep = Annotated[Caller | None, Depends(optional_caller)]
