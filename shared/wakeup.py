"""Doorbells on one machine, the SQLite counterpart of NOTIFY: idle workers are woken the moment a
task is stored (NEW_TASKS), and the API's long-polls the moment a task finishes (FINISHED_TASKS).

Each listener binds a Unix datagram socket in a folder beside the database file; whoever stored
the change sends an empty datagram to every socket there. A lost datagram costs nothing: each
listener's poll is still the safety net. No SQL, no payload, nothing to parse.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

logger = logging.getLogger(__name__)


NEW_TASKS = ".wake"
FINISHED_TASKS = ".done"


# A socket's address holds at most 107 bytes, and a listener's name takes 18 after its folder.
SOCKET_PATH_MAX = 107
NAME_LENGTH = len("/0123456789ab.sock")


def wake_folder(database_path: str, bell: str = NEW_TASKS) -> Path:
    return Path(database_path + bell)


@contextlib.contextmanager
def socket_folder(folder: Path) -> Iterator[str]:
    """The folder as sockets in it may be addressed: itself, or, where it is too deep for a socket's
    address (a database path of more than about 80 characters), /proc/self/fd/N for a descriptor of
    it held open meanwhile, which Linux resolves to the folder itself. Without this such a database
    had no doorbells: every wake-up waited for the next poll."""
    if len(os.fsencode(folder)) + NAME_LENGTH <= SOCKET_PATH_MAX:
        yield str(folder)
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def wait_readable(timeout: float, *fds: int | None) -> list[int]:
    """Block until one of the file descriptors is readable, or for timeout seconds; None entries
    are left out (with none left, it is a sleep). Returns the readable ones."""
    ready, _, _ = select.select([fd for fd in fds if fd is not None], [], [], timeout)
    return ready


def wake_all(database_path: str, bell: str = NEW_TASKS) -> None:
    """Nudge every listener of this bell beside this database; never raises."""
    folder = wake_folder(database_path, bell)
    try:
        names = os.listdir(folder)
        with socket_folder(folder) as address, socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.setblocking(False)
            for name in names:
                with contextlib.suppress(OSError):  # a worker that died leaves a socket nobody reads
                    sender.sendto(b"", f"{address}/{name}")
    except OSError:  # no folder: nobody listens yet
        return


class Doorbell(Protocol):
    """What an event loop watches for a store's rings (see Store.finished_bell)."""

    def fileno(self) -> int:
        """Readable when the bell has rung."""

    def drain(self) -> None:
        """Take every ring waiting; raises if the bell is broken (a lost connection)."""

    def close(self) -> None: ...


class WakeSocket:
    """One listener's doorbell: wait() returns at the first datagram or after the timeout; an
    event loop may watch `sock` instead and `drain` it."""

    def __init__(self, database_path: str, bell: str = NEW_TASKS) -> None:
        self.path: Path | None = None
        self.sock: socket.socket | None = None
        folder = wake_folder(database_path, bell)
        try:
            folder.mkdir(exist_ok=True)
            name = f"{uuid.uuid4().hex[:12]}.sock"
            path = folder / name
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                with socket_folder(folder) as address:
                    sock.bind(f"{address}/{name}")
            except OSError:
                sock.close()
                raise
            sock.setblocking(False)
        except OSError as error:  # a read-only folder, no /proc for a deep one: keep polling
            logger.warning("no wake-up socket beside the database, polling only: %s", error)
            return
        self.path, self.sock = path, sock

    def wait(self, timeout: float, interrupt: int | None = None) -> None:
        """Return at the first ring, when `interrupt` becomes readable, or after the timeout."""
        own = self.sock.fileno() if self.sock is not None else None
        if own is not None and own in wait_readable(timeout, own, interrupt):
            self.drain()

    def fileno(self) -> int:
        assert self.sock is not None
        return self.sock.fileno()

    def drain(self) -> None:
        """Read every datagram waiting: several changes may have rung; one wake-up serves them all."""
        if self.sock is not None:
            with contextlib.suppress(BlockingIOError, OSError):
                while True:
                    self.sock.recv(1)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
        self.sock = self.path = None
