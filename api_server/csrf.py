"""Refuse state-changing requests that another web site could make through a user's browser.

A page on another origin can make a browser send a POST with no preflight only as a "simple"
request: a form (form-encoded, multipart or text/plain body) or `fetch(..., {mode: "no-cors"})`.
Browsers mark such requests with `Origin` and, lately, `Sec-Fetch-Site`; and none of them can
carry `Content-Type: application/json`. So a write is refused when either header says it comes
from elsewhere, and a write whose body is not declared JSON is refused whatever its origin.
Clients that send neither header (curl, Python) are unaffected.

The one exception is a path that takes a text body (POST /tasks, the circuit as `text/plain`):
a page elsewhere can send that type, so there the origin check alone stands guard. Every browser
in use sends `Origin` on a cross-origin POST, and the worst such a request could do is queue a task.
"""

from __future__ import annotations

import logging

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": ":80", "https": ":443"}
JSON_ONLY = (
    "send the body as JSON with Content-Type: application/json (got {got}); "
    "curl -d and --data-binary send form-encoded unless you add -H 'Content-Type: application/json'"
)
JSON_OR_TEXT = (
    "send the body with Content-Type: application/json, or the circuit alone as {types} (got {got}); "
    "curl -d and --data-binary send form-encoded unless you add -H 'Content-Type: text/plain' "
    "(a .qasm file) or -H 'Content-Type: application/json'"
)


def _normalized_origin(scheme: str, host: str) -> str:
    """`scheme://host[:port]`, lower case, without the scheme's default port."""
    host = host.lower()
    default_port = DEFAULT_PORTS.get(scheme)
    if default_port is not None:
        host = host.removesuffix(default_port)
    return f"{scheme}://{host}"


def _parsed_origin(origin: str) -> str:
    scheme, sep, host = origin.strip().lower().partition("://")
    return _normalized_origin(scheme, host) if sep else origin


def _has_body(headers: Headers) -> bool:
    return headers.get("content-length", "0").strip() not in ("", "0") or "transfer-encoding" in headers


class CsrfGuard:
    """Pure ASGI middleware: 403 for a cross-origin write, 415 for a write whose body is not JSON
    (nor, on `text_paths`, one of `text_types`)."""

    def __init__(
        self,
        app: ASGIApp,
        text_paths: frozenset[str] = frozenset(),
        text_types: tuple[str, ...] = (),
        trusted_origins: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.text_paths = text_paths
        self.text_types = text_types
        # CORS_ALLOW_ORIGINS: pages there may write too (their requests carry a key, not a cookie).
        self.trusted_origins = frozenset(_parsed_origin(origin) for origin in trusted_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._cross_site(scope, headers, self.trusted_origins)
        if refusal is not None:
            logger.warning("refused %s %s: %s", scope["method"], scope["path"], refusal)
            await JSONResponse({"detail": refusal}, status_code=403)(scope, receive, send)
            return
        refusal = self._not_accepted(headers, scope["path"] in self.text_paths)
        if refusal is not None:
            await JSONResponse({"detail": refusal}, status_code=415)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _cross_site(scope: Scope, headers: Headers, trusted: frozenset[str]) -> str | None:
        origin = headers.get("origin")
        if origin is not None and _parsed_origin(origin) in trusted:
            return None
        if headers.get("sec-fetch-site", "").strip().lower() == "cross-site":
            return "cross-site request refused (Sec-Fetch-Site: cross-site)"
        if origin is None:
            return None
        if origin.strip().lower() == "null":
            return "cross-origin request refused (Origin: null)"
        own = _normalized_origin(scope["scheme"], headers.get("host", ""))
        if _parsed_origin(origin) != own:
            return f"cross-origin request refused: Origin {origin[:200]} is not this service's {own}"
        return None

    def _not_accepted(self, headers: Headers, takes_text: bool) -> str | None:
        content_type = headers.get("content-type")
        accepted = ("application/json", *self.text_types) if takes_text else ("application/json",)
        refusal = JSON_OR_TEXT if takes_text else JSON_ONLY
        types = " or ".join(self.text_types)
        if content_type is None:
            return refusal.format(types=types, got="no Content-Type") if _has_body(headers) else None
        if content_type.partition(";")[0].strip().lower() not in accepted:
            return refusal.format(types=types, got=content_type[:100])
        return None
