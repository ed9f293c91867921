"""Serving the API with uvicorn: the web application and the server, started once the settings
are known to be good (`api_server.main` reads them first, so a bad one stops the process at once).
"""

from __future__ import annotations

import logging
import signal
import socket
from types import FrameType

import uvicorn

from api_server import connections, descriptors
from api_server.app import create_app
from api_server.waiters import CompletionWatcher
from shared.config import Settings
from shared.runtime import freeze_what_is_loaded
from shared.store import Store

logger = logging.getLogger(__name__)


def anonymous_refusal(settings: Settings, store: Store) -> str | None:
    """Why the API must not start: reachable from other machines, yet open to anyone."""
    if settings.listens_on_loopback or settings.allow_anonymous:
        return None
    store.initialize()
    if store.find_key("").keys_exist:
        return None
    return (
        f"ConfigError: API_HOST={settings.api_host} lets other machines in and there is no API key yet: create one "
        "with `python -m api_server.keys create NAME --admin`, or set ALLOW_ANONYMOUS=true to serve anyone"
    )


class Server(uvicorn.Server):
    """uvicorn's server, with two changes to how it stops.

    On SIGTERM or Ctrl-C the long-polls in flight answer at once, with their task as it is, so
    that the graceful stop neither waits for them nor cuts them off at SHUTDOWN_GRACE_SECONDS
    (which answered a 500 and logged a traceback).

    uvicorn takes a SIGINT that comes after any stop signal for a second Ctrl-C and exits at once,
    skipping the application's shutdown (and logging the cancelled lifespan's traceback). On
    Ctrl-C, scripts/run.sh forwards a SIGTERM as the terminal's SIGINT arrives, and on a busy
    machine the SIGTERM may be handled first: only a second SIGINT forces the exit here."""

    def __init__(self, config: uvicorn.Config, watcher: CompletionWatcher) -> None:
        super().__init__(config)
        self.watcher = watcher
        self.interrupted = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        first_interrupt = sig == signal.SIGINT and not self.interrupted
        self.interrupted = self.interrupted or sig == signal.SIGINT
        if not (first_interrupt and self.should_exit):
            super().handle_exit(sig, frame)
        self.watcher.release()


def serve(settings: Settings, fd: int | None) -> None:
    """Serve until SIGTERM or Ctrl-C: on API_HOST:API_PORT, or on the inherited listening socket `fd`."""
    before, after = descriptors.raise_limit()
    if after != before:
        logger.info("file descriptor limit raised from %d to %d", before, after)
    # uvicorn drains in-flight requests on SIGTERM/SIGINT, then re-raises the signal against the
    # handlers that were installed before it started. Make those no-ops so a clean shutdown exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: None)
    app = create_app(settings)
    refusal = anonymous_refusal(settings, app.state.store)
    if refusal is not None:
        logger.error(refusal)
        raise SystemExit(2)
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        http=connections.protocol_class(settings.header_timeout_seconds),
        log_config=None,
        access_log=settings.debug,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) or None,
    )
    sockets = [socket.socket(fileno=fd)] if fd is not None else None
    freeze_what_is_loaded()
    Server(config, app.state.watcher).run(sockets=sockets)
