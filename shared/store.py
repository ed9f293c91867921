"""The storage interface both processes use; each backend owns its own SQL."""

from __future__ import annotations

import abc
from typing import Any

from shared.config import Settings
from shared.models import Claim, Task, TaskStatus


class Store(abc.ABC):
    """Tasks table and queue in one. Every method is one short transaction."""

    @abc.abstractmethod
    def initialize(self) -> None:
        """Create or migrate the schema; safe to call from every process at start-up."""

    @abc.abstractmethod
    def create_task(self, task_id: str, circuit: str, shots: int, seed: int | None, now: float) -> None:
        """Insert a submitted task; durable once this returns."""

    @abc.abstractmethod
    def get_task(self, task_id: str) -> Task | None:
        """The task with this id, or None."""

    @abc.abstractmethod
    def has_work(self) -> bool:
        """Cheap read-only check: is any task waiting? Lets idle workers poll without a write lock."""

    @abc.abstractmethod
    def recover_expired(self, now: float, max_attempts: int) -> list[tuple[str, TaskStatus, int]]:
        """Requeue tasks whose lease expired, or fail them past max_attempts; (id, new state, attempts)."""

    @abc.abstractmethod
    def claim_next(self, worker_id: str, now: float, lease_seconds: float) -> Claim | None:
        """Claim the oldest submitted task for worker_id, in one statement."""

    @abc.abstractmethod
    def renew_lease(self, claim: Claim, worker_id: str, expires_at: float) -> bool:
        """Extend the lease; False when the worker no longer owns the task."""

    @abc.abstractmethod
    def complete(self, claim: Claim, worker_id: str, result: dict[str, int], now: float) -> bool:
        """Record counts; False (and nothing written) when the lease was lost."""

    @abc.abstractmethod
    def fail(self, claim: Claim, worker_id: str, error: str, now: float) -> bool:
        """Record a one-line error; False (and nothing written) when the lease was lost."""

    @abc.abstractmethod
    def release(self, claim: Claim, worker_id: str) -> bool:
        """Put a claimed task back in the queue without spending an attempt (shutdown)."""

    @abc.abstractmethod
    def debug_rows(self) -> list[dict[str, Any]]:
        """Every row's bookkeeping columns; for tests and operators, not for the API."""


def open_store(settings: Settings) -> Store:
    """The store the settings select."""
    from shared.sqlite_store import SqliteStore

    return SqliteStore(settings.database_name, busy_timeout_ms=settings.busy_timeout_ms)
