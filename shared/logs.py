"""One logging set-up for both processes: one English line per event."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the simulation process formats its log lines without loading the settings
    from shared.config import Settings


def escape_controls(text: str) -> str:
    """Control characters (newlines included) as escapes, so user text cannot start a log line of its own."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


class OneLineFormatter(logging.Formatter):
    """Escapes control characters in the message: a circuit name, a path or an error quoting user
    text cannot forge a second log line."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


def configure_logging(settings: Settings, process: str) -> None:
    """Send every record to stderr as `time level process logger: message`."""
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter(f"%(asctime)s %(levelname)s {process}[%(process)d] %(name)s: %(message)s"))
    logging.basicConfig(level=settings.log_level if not settings.debug else "DEBUG", handlers=[handler], force=True)
