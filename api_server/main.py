"""`python -m api_server.main`: serve the API on API_HOST:API_PORT (Swagger UI at /docs)."""

from __future__ import annotations

import logging
import signal

import uvicorn

from api_server import connections, descriptors
from api_server.app import create_app
from shared.config import get_settings
from shared.logs import configure_logging

logger = logging.getLogger(__name__)


def main() -> None:
    settings = get_settings()
    configure_logging(settings, "api")
    before, after = descriptors.raise_limit()
    if after != before:
        logger.info("file descriptor limit raised from %d to %d", before, after)
    # uvicorn drains in-flight requests on SIGTERM/SIGINT, then re-raises the signal against the
    # handlers that were installed before it started. Make those no-ops so a clean shutdown exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: None)
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        http=connections.protocol_class(settings.header_timeout_seconds),
        log_config=None,
        access_log=settings.debug,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) or None,
    )


if __name__ == "__main__":
    main()
