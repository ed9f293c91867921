"""The signals that stop a worker, and the bell that lets them end its idle wait at once."""

from __future__ import annotations

import contextlib
import signal
import socket
from types import TracebackType

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


class SignalBell:
    """Readable once a signal has come. Python's C-level handler writes to it (set_wakeup_fd) the
    moment the signal arrives, whichever thread takes it; the handler written in Python runs later,
    between bytecodes of the main thread. So a wait that watches the bell ends even for a signal
    that came just before the wait began, when a flag set by the handler was checked too early and
    the select() had not started yet: the race that asyncio's loops close the same way."""

    def __init__(self) -> None:
        self._read, self._write = socket.socketpair()
        self._read.setblocking(False)
        self._write.setblocking(False)
        self._previous = signal.set_wakeup_fd(self._write.fileno(), warn_on_full_buffer=False)

    def fileno(self) -> int:
        return self._read.fileno()

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._read.recv(64):
                pass

    def close(self) -> None:
        signal.set_wakeup_fd(self._previous)
        self._read.close()
        self._write.close()

    def __enter__(self) -> SignalBell:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
