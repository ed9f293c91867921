"""Group commit (shared.group_commit) on a real SQLite file: submissions that wait share a commit,
and each still gets its own answer, its own refusal, or the group's failure."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from shared.group_commit import GroupCommit

pytestmark = pytest.mark.database_independent


class Refused(Exception):
    pass


class Broken(Exception):
    pass


@pytest.fixture
def database(tmp_path: Path) -> str:
    path = str(tmp_path / "group.db")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE items (name TEXT PRIMARY KEY)")
    return path


def committer(path: str) -> GroupCommit:
    local = threading.local()

    @contextlib.contextmanager
    def transaction() -> Iterator[sqlite3.Connection]:
        if not hasattr(local, "conn"):
            local.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn = local.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    return GroupCommit(transaction, (Refused,))


def stored(path: str) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM items")}


def insert(name: str, then: Callable[[], None] = lambda: None) -> Callable[[Any], str]:
    def attempt(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO items VALUES (?)", (name,))
        then()
        return name

    return attempt


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


def held_group(group: GroupCommit, first: Callable[[Any], str], others: list[Callable[[Any], str]]) -> list[Any]:
    """Run `first` as the leader of a group, held open until `others` all wait, then let them go:
    they make the next group. Each submission's answer or exception, in order."""
    entered, release = threading.Event(), threading.Event()

    def leader(conn: Any) -> str:
        entered.set()  # its group is formed: whoever comes now waits for the next
        release.wait(10)
        return first(conn)

    def outcome(attempt: Callable[[Any], str]) -> Any:
        try:
            return group.run(attempt)
        except Exception as error:  # noqa: BLE001 - the test looks at it
            return error

    with ThreadPoolExecutor(len(others) + 1) as pool:
        futures = [pool.submit(outcome, leader)]
        wait_until(entered.is_set, "the first submission to lead a group of its own")
        futures += [pool.submit(outcome, attempt) for attempt in others]
        wait_until(lambda: len(group._waiting) == len(others), "the others to wait their turn")
        release.set()
        return [future.result() for future in futures]


def test_a_lone_submission_commits_at_once(database: str) -> None:
    group = committer(database)
    assert group.run(insert("a")) == "a"
    assert stored(database) == {"a"} and group.groups == 1


def test_submissions_waiting_on_a_commit_share_the_next(database: str) -> None:
    group = committer(database)
    answers = held_group(group, insert("first"), [insert(f"t{i}") for i in range(12)])
    assert answers == ["first", *[f"t{i}" for i in range(12)]]
    assert stored(database) == {"first", *[f"t{i}" for i in range(12)]}
    assert group.groups == 2  # the leader's, then one for all twelve that waited


def test_a_refused_submission_leaves_the_rest_of_its_group_committed(database: str) -> None:
    def refuse() -> None:
        raise Refused("queue full")

    group = committer(database)
    answers = held_group(group, insert("first"), [insert("a"), insert("b", then=refuse), insert("c")])
    assert answers[:2] == ["first", "a"] and isinstance(answers[2], Refused) and answers[3] == "c"
    assert stored(database) == {"first", "a", "c"}  # b's row was rolled back with its savepoint


def test_a_failure_fails_every_submission_of_its_group_and_commits_none(database: str) -> None:
    def break_down() -> None:
        raise Broken("the disk is full")

    group = committer(database)
    answers = held_group(group, insert("first"), [insert("a"), insert("b", then=break_down), insert("c")])
    assert answers[0] == "first"
    assert all(isinstance(answer, Broken) for answer in answers[1:])
    assert stored(database) == {"first"}
    assert group.run(insert("after")) == "after"  # the next submission leads a group of its own
