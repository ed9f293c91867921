"""Sending calls: where the service is, retries with backoff, and the one mapping from answers to errors.

A retry is a plain loop rather than a library's decorator: the rule is short (connection errors,
`429` and `503`, honouring `Retry-After`), it must run the same in the sync and the async
transport, and every retry resends the same `Call`, so a POST keeps its Idempotency-Key.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

from qtq._protocol import Call
from qtq._version import __version__
from qtq.errors import (
    APIError,
    Conflict,
    ConnectionFailed,
    NotFound,
    ServiceUnavailable,
    TooLarge,
    Unauthorized,
    ValidationError,
)

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 30.0
RETRY_STATUSES = frozenset({429, 503})
ERRORS: dict[int, type[APIError]] = {
    401: Unauthorized,
    403: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    429: ServiceUnavailable,
    503: ServiceUnavailable,
    # The disk holding the service's database is full: not retried (an operator must free space).
    507: ServiceUnavailable,
}


@dataclass(frozen=True)
class Endpoint:
    """Where the service is and how to talk to it; built once per client."""

    url: str
    api_key: str | None
    timeout: float

    @classmethod
    def resolve(cls, url: str | None, api_key: str | None, timeout: float) -> Endpoint:
        """The arguments, else QTQ_URL and QTQ_API_KEY, else the local default (no key)."""
        url = (url or os.environ.get("QTQ_URL") or DEFAULT_URL).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https:// (got {url!r})")
        return cls(url, api_key or os.environ.get("QTQ_API_KEY") or None, timeout)

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": f"qtq/{__version__}"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


@dataclass(frozen=True)
class Retry:
    """How often and how long to wait before trying a call again."""

    retries: int = 5
    backoff: float = 0.5  # the first pause after a connection error; doubled at each retry
    max_backoff: float = 10.0
    max_retry_after: float = 120.0  # a longer Retry-After is cut to this

    def delay(self, attempt: int, outcome: httpx.Response | httpx.TransportError) -> float | None:
        """Seconds to wait before retry number `attempt + 1`, or None when the outcome is final."""
        if attempt >= self.retries:
            return None
        if isinstance(outcome, httpx.Response):
            if outcome.status_code not in RETRY_STATUSES:
                return None
            after = parse_retry_after(outcome.headers.get("Retry-After"))
            if after is not None:
                return min(after, self.max_retry_after)
        elif isinstance(outcome, httpx.UnsupportedProtocol):
            return None  # a wrong URL does not get better
        # Jitter keeps many clients that failed together from retrying together.
        return min(self.max_backoff, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` in seconds: a number of seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def answer(response: httpx.Response) -> Any:
    """The answer's JSON body, or the error it stands for."""
    body = _body(response)
    if response.is_success:
        if isinstance(body, str):
            raise APIError(response.status_code, f"the answer is not JSON: {body[:200]!r}", body)
        return body
    detail = body.get("detail") if isinstance(body, dict) else None
    if response.status_code == 422:
        errors = detail if isinstance(detail, list) else [{"msg": str(detail or body)}]
        raise ValidationError(422, [e if isinstance(e, dict) else {"msg": str(e)} for e in errors], body)
    message = detail if isinstance(detail, str) else str(body)[:500] or response.reason_phrase
    raise ERRORS.get(response.status_code, APIError)(response.status_code, message, body)


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _request(call: Call, endpoint: Endpoint) -> dict[str, Any]:
    """httpx.request's arguments for a call."""
    timeout = httpx.Timeout(endpoint.timeout, read=endpoint.timeout + call.wait)
    return {
        "method": call.method,
        "url": call.path,
        "params": list(call.params),
        "json": call.json,
        "headers": dict(call.headers),
        "timeout": timeout,
    }


def _unreachable(call: Call, endpoint: Endpoint, error: httpx.TransportError) -> ConnectionFailed:
    return ConnectionFailed(f"{call.method} {endpoint.url}{call.path} failed: {type(error).__name__}: {error}")


def _log_retry(call: Call, outcome: httpx.Response | httpx.TransportError, delay: float, attempt: int) -> None:
    what = f"answered {outcome.status_code}" if isinstance(outcome, httpx.Response) else type(outcome).__name__
    logger.warning("%s %s %s; retrying in %.1f s (retry %d)", call.method, call.path, what, delay, attempt + 1)


class Transport:
    """Sends calls on one pooled httpx.Client."""

    def __init__(self, endpoint: Endpoint, retry: Retry, transport: httpx.BaseTransport | None = None) -> None:
        self.endpoint, self.retry = endpoint, retry
        self._client = httpx.Client(base_url=endpoint.url, headers=endpoint.headers(), transport=transport)

    def send(self, call: Call) -> Any:
        attempt = 0
        while True:
            outcome: httpx.Response | httpx.TransportError
            try:
                outcome = self._client.request(**_request(call, self.endpoint))
            except httpx.TransportError as error:
                outcome = error
            delay = self.retry.delay(attempt, outcome)
            if delay is None:
                if isinstance(outcome, httpx.TransportError):
                    raise _unreachable(call, self.endpoint, outcome) from outcome
                return answer(outcome)
            _log_retry(call, outcome, delay, attempt)
            time.sleep(delay)
            attempt += 1

    def close(self) -> None:
        self._client.close()


class AsyncTransport:
    """Sends calls on one pooled httpx.AsyncClient; the same rules as `Transport`."""

    def __init__(self, endpoint: Endpoint, retry: Retry, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.endpoint, self.retry = endpoint, retry
        self._client = httpx.AsyncClient(base_url=endpoint.url, headers=endpoint.headers(), transport=transport)

    async def send(self, call: Call) -> Any:
        attempt = 0
        while True:
            outcome: httpx.Response | httpx.TransportError
            try:
                outcome = await self._client.request(**_request(call, self.endpoint))
            except httpx.TransportError as error:
                outcome = error
            delay = self.retry.delay(attempt, outcome)
            if delay is None:
                if isinstance(outcome, httpx.TransportError):
                    raise _unreachable(call, self.endpoint, outcome) from outcome
                return answer(outcome)
            _log_retry(call, outcome, delay, attempt)
            await asyncio.sleep(delay)
            attempt += 1

    async def close(self) -> None:
        await self._client.aclose()
