"""Log lines stay one line whatever text they quote."""

from __future__ import annotations

import logging

import pytest

from shared.logs import OneLineFormatter

pytestmark = pytest.mark.database_independent


def test_quoted_user_text_cannot_forge_a_log_line() -> None:
    formatter = OneLineFormatter("%(levelname)s %(name)s: %(message)s")
    forged = "x\nINFO worker.worker: task 00000000-0000-0000-0000-000000000000 completed\r\x1b[2K"
    record = logging.LogRecord("api", logging.WARNING, __file__, 1, "refused origin %s", (forged,), None)
    line = formatter.format(record)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert line == (
        "WARNING api: refused origin x\\nINFO worker.worker: task 00000000-0000-0000-0000-000000000000 "
        "completed\\r\\x1b[2K"
    )


def test_plain_text_is_left_alone() -> None:
    formatter = OneLineFormatter("%(message)s")
    record = logging.LogRecord("w", logging.INFO, __file__, 1, "task %s completed: π/2 ok", ("abc",), None)
    assert formatter.format(record) == "task abc completed: π/2 ok"
