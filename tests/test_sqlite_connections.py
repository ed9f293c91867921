"""The SQLite store's per-thread connections end with their threads: the API's thread pool retires
idle threads and starts new ones, and a connection left behind by each would leak descriptors and
memory for as long as the process runs (the soak found the API past 300 descriptors in 10 minutes)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from shared.sqlite_store import SqliteStore
from tests.services import wait_for

pytestmark = pytest.mark.backend_only("sqlite")


def open_descriptors(path: Path) -> int:
    """How many of this process's descriptors are open on the database or its -wal."""
    links = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # closed since listed
            continue
    return sum(link.startswith(str(path)) for link in links)


def test_a_threads_connection_is_closed_when_the_thread_ends(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    store = SqliteStore(str(path))
    store.initialize()
    try:
        store.get_task("x")  # this thread's connection, open for the whole test
        held = open_descriptors(path)
        for _ in range(20):
            thread = threading.Thread(target=store.get_task, args=("x",))
            thread.start()
            thread.join()
        # SQLite keeps one closed connection's descriptor open, for the next connection to reuse,
        # while another connection of this process still locks the file: one more, never one per thread.
        wait_for(lambda: open_descriptors(path) <= held + 1, 10, "the ended threads' connections to close")
        assert store.get_task("x") is None  # and this thread's connection still works
    finally:
        store.close()
    assert open_descriptors(path) == 0
