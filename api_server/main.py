"""`python -m api_server.main`: serve the API on API_HOST:API_PORT (Swagger UI at /docs).

`--fd N` serves on an inherited, already listening socket instead (a supervisor's, or a test
harness's, which then never races another process for a free port).
"""

from __future__ import annotations

import argparse

from shared.config import get_settings
from shared.logs import configure_logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the Quantum Task Queue API.")
    parser.add_argument("--fd", type=int, default=None, help="serve on this inherited listening socket")
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings, "api")
    # Imported once the settings are good: the web application takes 0.4 s to import, and a bad
    # setting should stop the process at once.
    from api_server.server import serve

    serve(settings, args.fd)


if __name__ == "__main__":
    main()
