"""`python -m api_server.main`: serve the API on API_HOST:API_PORT (Swagger UI at /docs)."""

from __future__ import annotations

import uvicorn

from api_server.app import create_app
from shared.config import get_settings
from shared.logs import configure_logging


def main() -> None:
    settings = get_settings()
    configure_logging(settings, "api")
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=settings.debug,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) or None,
    )


if __name__ == "__main__":
    main()
