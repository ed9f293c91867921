"""A small real filesystem that a test can fill to the last byte (a real ENOSPC), for the
full-disk tests of both backends."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.services import BELL_QASM3, slow_circuit, submit, wait_for
from tests.test_concurrency import wait_all


@contextlib.contextmanager
def small_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path`, so that a test can fill it: a real ENOSPC, which SQLite
    reports as SQLITE_FULL (an RLIMIT_FSIZE would give EFBIG, which SQLite reports as an I/O error)
    and PostgreSQL as disk_full. Mounting needs root, or sudo without a password."""
    path.mkdir()
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    options = f"size={size},mode=0777"
    mounted = subprocess.run([*sudo, "mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    assert mounted.returncode == 0, f"cannot mount a tmpfs (root or sudo needed): {mounted.stderr.decode().strip()}"
    try:
        yield path
    finally:
        # Lazy: were a process still holding a file there (a failed test), it is detached anyway.
        subprocess.run([*sudo, "umount", "--lazy", str(path)], check=True)


def fill(directory: Path) -> Path:
    """Write a file that takes every free byte of the filesystem; removing it frees the space."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as out:
        for size in (1 << 20, 4096, 1):
            block = b"\0" * size
            with contextlib.suppress(OSError):
                while out.write(block):
                    pass
    with pytest.raises(OSError) as full:
        (directory / "one-more").write_bytes(b"\0" * 4096)
    assert full.value.errno == errno.ENOSPC
    return filler


def one_running_and_five_waiting(client: httpx.Client) -> list[str]:
    """A task of about a second, claimed and running, and five Bell tasks behind it: the first
    will be running when a test fills the disk. Their ids, the running one first."""
    running = submit(client, slow_circuit(10_000), shots=10)
    waiting = [submit(client, BELL_QASM3, shots=10) for _ in range(5)]
    wait_for(lambda: client.get(f"/tasks/{running}").json()["status"] == "pending", 30, "the slow task to run")
    return [running, *waiting]


DISK_FULL = "The disk holding the database is full; nothing was stored. Retry once space is freed"


def submit_until_full(client: httpx.Client, acknowledged: list[str], tries: int) -> None:
    """Bell submissions until one is refused with the disk-full 507 (each stored one is added to
    `acknowledged`); no answer may be anything else, and reads go on meanwhile."""
    for _ in range(tries):
        response = client.post("/tasks", json={"circuit": BELL_QASM3, "shots": 10})
        assert response.status_code in (202, 507), response.text
        if response.status_code == 507:
            assert response.json() == {"detail": DISK_FULL}
            assert response.headers["Retry-After"] == "10"
            assert client.get(f"/tasks/{acknowledged[0]}").status_code == 200, "reads must go on"
            return
        acknowledged.append(response.json()["task_id"])
    raise AssertionError(f"{tries} submissions were stored on a full disk")


def assert_recovers(client: httpx.Client, acknowledged: list[str]) -> None:
    """Once space is back: a submission is stored within seconds, with no restart, and every task
    acknowledged before or after completes, each on its first attempt."""

    def stored() -> str:
        response = client.post("/tasks", json={"circuit": BELL_QASM3, "shots": 10})
        assert response.status_code in (202, 507), response.text
        return response.json()["task_id"] if response.status_code == 202 else ""

    acknowledged.append(wait_for(stored, 15, "a submission to be stored once space is back"))
    views = wait_all(client, acknowledged, timeout=60)
    assert all(view["status"] == "completed" for view in views.values()), views
    assert all(view["attempts"] == 1 for view in views.values()), "a task ran twice"
