"""Group commit: submissions that arrive while another is being committed share the next commit.

SQLite has one writer at a time, and a durable commit waits for the disk (fsync). With many clients
submitting at once, each POST used to wait for the write lock, then hold it through its own fsync.
Here the first submission to arrive leads: it takes every submission waiting at that moment,
runs each in a SAVEPOINT of one transaction, commits once, and hands each its own answer; the
submissions that arrived meanwhile form the next group, led by the first of them. Nothing waits
on purpose: a lone submission commits at once, exactly as before.

A submission's own refusals (`refusals`: a full queue, a quota) roll back its savepoint only; any
other failure (a busy or full database, a broken connection) fails the whole group, and every
submitter of it gets that error, none of them acknowledged.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class _Entry(Generic[T]):
    def __init__(self, attempt: Callable[[Any], T]) -> None:
        self.attempt = attempt
        self.wake = threading.Event()
        self.lead = False  # set with wake: lead the next group instead of reading an answer
        self.answer: T | None = None
        self.error: BaseException | None = None

    def result(self) -> T:
        if self.error is not None:
            raise self.error
        return self.answer  # type: ignore[return-value]


class GroupCommit:
    """Runs attempts (each a function of a connection inside the transaction) in shared commits."""

    def __init__(
        self, transaction: Callable[[], AbstractContextManager[Any]], refusals: tuple[type[BaseException], ...]
    ) -> None:
        self.transaction = transaction
        self.refusals = refusals
        self._lock = threading.Lock()
        self._waiting: list[_Entry[Any]] = []
        self._leading = False
        self.groups = 0  # commits made, for tests and curiosity

    def run(self, attempt: Callable[[Any], T]) -> T:
        entry: _Entry[T] = _Entry(attempt)
        with self._lock:
            self._waiting.append(entry)
            lead = not self._leading
            self._leading = True
        if not lead:
            entry.wake.wait()
            if not entry.lead:
                return entry.result()
        with self._lock:
            group, self._waiting = self._waiting, []
        try:
            self._commit(group)
        finally:
            with self._lock:
                if self._waiting:
                    following = self._waiting[0]
                    following.lead = True
                    following.wake.set()
                else:
                    self._leading = False
        return entry.result()

    def _commit(self, group: list[_Entry[Any]]) -> None:
        answered: list[tuple[_Entry[Any], Any]] = []
        refused: list[tuple[_Entry[Any], BaseException]] = []
        try:
            with self.transaction() as conn:
                for entry in group:
                    conn.execute("SAVEPOINT submission")
                    try:
                        answer = entry.attempt(conn)
                    except self.refusals as why:
                        conn.execute("ROLLBACK TO submission")
                        refused.append((entry, why))
                    else:
                        answered.append((entry, answer))
                    conn.execute("RELEASE submission")
            self.groups += 1
        except BaseException as error:  # noqa: BLE001 - nothing of the group was committed: all share it
            for entry in group:
                entry.error = error
        else:
            for entry, answer in answered:
                entry.answer = answer
            for entry, refusal in refused:
                entry.error = refusal
        for entry in group:
            entry.wake.set()
