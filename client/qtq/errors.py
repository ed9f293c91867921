"""Every error the client raises: one base class, one subclass per thing a caller may handle.

The transport's own errors (`httpx.HTTPStatusError`, `httpx.ConnectError`, ...) never escape: they
are turned into these at the one place that sends requests (`qtq._http`), with `raise ... from`.
"""

from __future__ import annotations

from typing import Any


class QTQError(Exception):
    """Base class of every error this package raises."""


class APIError(QTQError):
    """The service answered with an error status; `detail` is its message."""

    def __init__(self, status_code: int, detail: str, body: Any = None) -> None:
        super().__init__(f"{status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail
        self.body = body


class NotFound(APIError):
    """404: no task or batch has this id."""


class ValidationError(APIError):
    """422: the service refused the request; `messages` holds one line per problem, each starting
    with the field's name (`shots: Input should be greater than or equal to 1`)."""

    def __init__(self, status_code: int, errors: list[dict[str, Any]], body: Any = None) -> None:
        self.errors = errors
        self.messages = [str(error.get("msg", error)) for error in errors]
        super().__init__(status_code, "; ".join(self.messages), body)


class Unauthorized(APIError):
    """401 or 403: the API key is missing, wrong, or not allowed to do this."""


class Conflict(APIError):
    """409: an Idempotency-Key reused with another body, or a cancel of a finished task."""


class TooLarge(APIError):
    """413: a circuit or a request body over the service's limits."""


class ServiceUnavailable(APIError):
    """503 or 429 still answered after every retry (queue full, database busy, a key's quota), or
    507 at once (the service's disk is full)."""


class ConnectionFailed(QTQError):
    """The service could not be reached (after every retry); the transport's error is the cause."""


class TaskFailed(QTQError):
    """A task ended without a result; `error` is its one-line error (`Type: message`)."""

    def __init__(self, task_id: str, error: str) -> None:
        super().__init__(error)
        self.task_id = task_id
        self.error = error


class TaskCancelled(TaskFailed):
    """A task was cancelled before it produced a result."""


class WaitTimeout(QTQError, TimeoutError):
    """`wait(timeout=...)` ran out before the task or batch was finished (it goes on running)."""
