"""One logging set-up for both processes: one English line per event."""

import logging

from shared.config import Settings


def configure_logging(settings: Settings, process: str) -> None:
    """Send every record to stderr as `time level process logger: message`."""
    logging.basicConfig(
        level=settings.log_level if not settings.debug else "DEBUG",
        format=f"%(asctime)s %(levelname)s {process}[%(process)d] %(name)s: %(message)s",
        force=True,
    )
