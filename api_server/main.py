"""`python -m api_server.main`: serve the API on API_HOST:API_PORT (Swagger UI at /docs).

`--fd N` serves on an inherited, already listening socket instead (a supervisor's, or a test
harness's, which then never races another process for a free port).
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket

import uvicorn

from api_server import connections, descriptors
from api_server.app import create_app
from shared.config import get_settings
from shared.logs import configure_logging

logger = logging.getLogger(__name__)


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
    config = uvicorn.Config(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        http=connections.protocol_class(settings.header_timeout_seconds),
        log_config=None,
        access_log=settings.debug,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) or None,
    )
    sockets = [socket.socket(fileno=args.fd)] if args.fd is not None else None
    uvicorn.Server(config).run(sockets=sockets)


if __name__ == "__main__":
    main()
