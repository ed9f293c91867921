"""File descriptors: raise the soft limit at start-up, and say in one line when they run out.

Every open connection holds a descriptor. When none is left, new connections cannot be
accepted: asyncio's loop then reports `socket.accept() out of system resource` with a traceback
and retries a second later; uvloop (libuv) accepts and drops them without a word. Either way the
log gets one line instead, at most every REPORT_EVERY_SECONDS: the limit is per process, so the
last report time is too.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import resource
import time
from typing import Any

logger = logging.getLogger(__name__)

# Enough for tens of thousands of idle keep-alive connections; past this, select()-based code in
# libraries would break and a runaway leak should still hit a wall.
MAX_DESCRIPTORS = 65536
REPORT_EVERY_SECONDS = 10.0
OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE)

_last_report = float("-inf")


def descriptor_limit() -> int:
    """The process's soft RLIMIT_NOFILE."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def raise_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit, at most MAX_DESCRIPTORS; return (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = MAX_DESCRIPTORS if hard == resource.RLIM_INFINITY else min(hard, MAX_DESCRIPTORS)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft, soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return soft, target


def report_exhausted() -> None:
    """Log the one line that says connections are being refused, unless it was logged just now."""
    global _last_report
    now = time.monotonic()
    if now - _last_report >= REPORT_EVERY_SECONDS:
        _last_report = now
        logger.warning("refusing connections: out of file descriptors (limit %d)", descriptor_limit())


def probe(open_connections: int) -> None:
    """Once connections hold half the limit, check on each new one that a descriptor is still free.

    libuv's refusals never reach Python, so the last connection it did accept is where to notice.
    """
    if open_connections < descriptor_limit() // 2:
        return
    try:
        os.close(os.open(os.devnull, os.O_RDONLY))
    except OSError as error:
        if error.errno in OUT_OF_DESCRIPTORS:
            report_exhausted()


def handle_loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Loop exception handler: one line for a failed accept(), the default handler for the rest."""
    error = context.get("exception")
    accepting = str(context.get("message", "")).startswith("socket.accept()")
    if accepting and isinstance(error, OSError) and error.errno in OUT_OF_DESCRIPTORS:
        report_exhausted()
        return
    loop.default_exception_handler(context)
