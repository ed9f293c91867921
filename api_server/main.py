"""`python -m api_server.main`: serve the API on API_HOST:API_PORT (Swagger UI at /docs).

`--fd N` serves on an inherited, already listening socket instead (a supervisor's, or a test
harness's, which then never races another process for a free port).
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
from types import FrameType

import uvicorn

from api_server import connections, descriptors
from api_server.app import create_app
from api_server.waiters import CompletionWatcher
from shared.config import Settings, get_settings
from shared.logs import configure_logging
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the Quantum Task Queue API.")
    parser.add_argument("--fd", type=int, default=None, help="serve on this inherited listening socket")
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings, "api")
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
    sockets = [socket.socket(fileno=args.fd)] if args.fd is not None else None
    freeze_what_is_loaded()
    Server(config, app.state.watcher).run(sockets=sockets)


if __name__ == "__main__":
    main()
