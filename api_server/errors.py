"""The one place that turns exceptions into HTTP answers."""

from __future__ import annotations

import logging
import sys

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from shared.errors import QuotaExceeded, StoreBusy, StoreError, StoreFull

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 1
# A key at its max_queued waits for some of its tasks to finish: a few seconds, not one.
QUOTA_RETRY_AFTER_SECONDS = 5
# A full disk is an operator's problem, seldom fixed within a second or two.
DISK_FULL_RETRY_AFTER_SECONDS = 10
TOP_LEVEL_FIELDS = "circuit, shots, seed, tags, parameters, observables, memory, method and noise"


def _field_name(loc: tuple[str | int, ...]) -> str:
    # ("body", "shots") -> "shots"; ("query", "limit") -> "limit"; ("body",) -> "body"
    parts = [str(p) for p in loc[1:]] if loc and loc[0] in ("body", "query", "path", "header") else list(map(str, loc))
    return ".".join(parts) if parts else str(loc[0]) if loc else "body"


def _message(error: dict) -> str:
    kind = error.get("type", "")
    if kind == "json_invalid":
        reason = error.get("ctx", {}).get("error", "")
        return f"body: is not valid JSON ({reason})" if reason else "body: is not valid JSON"
    if kind == "extra_forbidden":
        where = _field_name(error["loc"])
        if len(error["loc"]) == 2:  # ("body", name): a field of the submission itself
            return f"{where}: unknown field; accepted fields are {TOP_LEVEL_FIELDS}"
        return f"{where}: unknown field"
    if kind == "missing":
        return f"{_field_name(error['loc'])}: field required"
    msg = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    loc = tuple(error["loc"])
    if len(loc) >= 3 and loc[-1] == "[key]":  # a bad key of a map such as tags or parameters
        return f"{_field_name(loc[:-2])}: the key {str(loc[-2])!r}: {msg}"
    return f"{_field_name(loc)}: {msg}"


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # The input is not echoed back: it may be a megabyte of circuit text.
    detail = [
        {"loc": [p if isinstance(p, int) else str(p) for p in e["loc"]], "msg": _message(e), "type": e["type"]}
        for e in exc.errors()
    ]
    return JSONResponse(status_code=422, content={"detail": detail})


def _unparsable_body(exc: HTTPException) -> str | None:
    """FastAPI answers 400 'error parsing the body' for bytes json.loads cannot take; say why instead."""
    cause = exc.__cause__
    if exc.status_code != 400 or cause is None:
        return None
    if isinstance(cause, UnicodeDecodeError):
        return f"body: is not valid JSON (not UTF-8: byte 0x{cause.object[cause.start]:02x} at position {cause.start})"
    if isinstance(cause, RecursionError):
        return "body: is not valid JSON (nested too deeply)"
    if isinstance(cause, ValueError) and "int_max_str_digits" in str(cause):
        limit = sys.get_int_max_str_digits()
        return f"body: a number in the JSON has more than {limit} digits; no field takes numbers that long"
    return f"body: is not valid JSON ({type(cause).__name__})"


async def http_error(request: Request, exc: HTTPException) -> Response:
    message = _unparsable_body(exc)
    if message is None:
        return await http_exception_handler(request, exc)
    return JSONResponse(
        status_code=422, content={"detail": [{"loc": ["body"], "msg": message, "type": "json_invalid"}]}
    )


async def store_error(request: Request, exc: StoreError) -> JSONResponse:
    status, retry_after = 503, RETRY_AFTER_SECONDS
    if isinstance(exc, StoreFull):
        logger.error("database disk full on %s %s: %s", request.method, request.url.path, exc)
        # 507 Insufficient Storage: nothing was stored; reads still work.
        status, retry_after = 507, DISK_FULL_RETRY_AFTER_SECONDS
        detail = "The disk holding the database is full; nothing was stored. Retry once space is freed"
    elif isinstance(exc, StoreBusy):
        logger.warning("database busy on %s %s: %s", request.method, request.url.path, exc)
        detail = "Database is busy; retry shortly"
    else:
        logger.error("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        detail = "Database is unavailable"
    return JSONResponse(status_code=status, content={"detail": detail}, headers={"Retry-After": str(retry_after)})


async def over_quota(request: Request, exc: QuotaExceeded) -> JSONResponse:
    logger.info("refused %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        status_code=429, content={"detail": str(exc)}, headers={"Retry-After": str(QUOTA_RETRY_AFTER_SECONDS)}
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(StoreError, store_error)  # type: ignore[arg-type]
    app.add_exception_handler(QuotaExceeded, over_quota)  # type: ignore[arg-type]
