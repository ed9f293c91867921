"""The signals that stop a worker, kept for its main thread."""

from __future__ import annotations

import signal

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


def leave_stop_signals_to_the_main_thread() -> None:
    """Block SIGTERM and SIGINT in the calling helper thread. The kernel may hand a signal sent to
    the process to any thread that does not block it; taken by a helper thread, it would not cut
    the main thread's idle wait short, which then lasted until the next poll."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
