"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware

from api_server import batches, circuit_text, dashboard, descriptors, docs, errors, monitoring, service_limits, usage
from api_server.auth import OpenMode, RateLimiter
from api_server.csrf import CsrfGuard
from api_server.headers import SecurityHeaders
from api_server.limits import BodySizeLimit
from api_server.routes import router
from api_server.waiters import CompletionWatcher
from shared.backends import open_store
from shared.config import Settings, get_settings
from shared.store import Store

logger = logging.getLogger(__name__)

DESCRIPTION = """
Submit an OpenQASM 3 or OpenQASM 2 circuit with `POST /tasks`, then poll `GET /tasks/{task_id}`
until its status is `completed` (measurement counts in `result`) or `failed` (one-line `error`).
A separate worker process runs each circuit on Qiskit Aer. The dashboard is at `/`.
"""


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    """Build the app; the store's schema is created (idempotently) at start-up."""
    settings = settings or get_settings()
    store = store or open_store(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(descriptors.handle_loop_exception)
        store.initialize()
        app.state.watcher.start()
        if settings.listens_on_all_addresses and settings.allowed_hosts is None:
            logger.warning(
                "API_HOST is %s but ALLOWED_HOSTS is not set: only requests for %s are answered; "
                "set ALLOWED_HOSTS to the names clients use",
                settings.api_host,
                ", ".join(settings.trusted_hosts),
            )
        logger.info("API ready on database %s", settings.database_label)
        yield
        await app.state.watcher.stop()
        store.close()
        loop.set_exception_handler(previous_handler)

    app = FastAPI(
        title="Quantum Task Queue",
        version="0.1.0",
        description=DESCRIPTION,
        debug=settings.debug,
        lifespan=lifespan,
        docs_url=None,  # served by api_server.docs from local assets instead of a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.metrics = monitoring.metrics_registry(store, settings)
    app.state.watcher = CompletionWatcher(store)
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_second)
    app.state.open_mode = OpenMode()
    errors.install(app)
    # First: it takes POST /tasks only when the body is circuit text, and leaves JSON to `router`.
    app.include_router(circuit_text.router)
    app.include_router(router)
    app.include_router(batches.router)
    app.include_router(monitoring.router)
    app.include_router(service_limits.router)
    app.include_router(usage.router)
    app.include_router(dashboard.router)
    app.include_router(docs.router)
    app.mount("/static", dashboard.static_files, name="static")
    app.mount(docs.ASSETS_URL, docs.assets, name="docs-assets")
    # The last added runs first: headers on every answer, then the Host check, then the write rules.
    app.add_middleware(
        BodySizeLimit, max_bytes=settings.max_body_bytes, overrides={"/batches": settings.max_batch_bytes}
    )
    _document_limits(app, settings)
    app.add_middleware(
        CsrfGuard,
        text_paths=frozenset({"/tasks"}),
        text_types=circuit_text.CONTENT_TYPES,
        trusted_origins=frozenset(settings.cors_allow_origins or ()),
    )
    if settings.cors_allow_origins:
        # Outside the write rules, so that a preflight is answered before them.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Location", "Retry-After", "Idempotent-Replayed"],
            max_age=600,
        )
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.trusted_hosts, www_redirect=False)
    app.add_middleware(SecurityHeaders)
    return app


def _document_limits(app: FastAPI, settings: Settings) -> None:
    """/openapi.json states this app's own limits (MAX_SHOTS, DEFAULT_SHOTS, MAX_CIRCUIT_BYTES), in
    the JSON body and in the text body's schema and query, which the routes enforce, rather than
    the defaults the schema classes were written with."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            fields = schema["components"]["schemas"]["TaskCreate"]["properties"]
            fields["shots"].update(maximum=settings.max_shots, default=settings.default_shots)
            fields["circuit"]["maxLength"] = settings.max_circuit_bytes
            submit = schema["paths"]["/tasks"]["post"]
            content = submit["requestBody"]["content"]
            for media in circuit_text.CONTENT_TYPES:  # copies: the operation shares circuit_text's dicts
                content[media] = {**content[media], "schema": {**content[media]["schema"]}}
                content[media]["schema"]["maxLength"] = settings.max_circuit_bytes
            (shots,) = [p for p in submit["parameters"] if p["name"] == "shots" and p["in"] == "query"]
            shots["schema"]["anyOf"][0]["maximum"] = settings.max_shots
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
