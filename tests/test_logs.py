"""Log lines stay one line whatever text they quote."""

from __future__ import annotations

import logging
import re

import pytest

from shared.config import Settings
from shared.logs import OneLineFormatter, configure_logging

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


@pytest.mark.parametrize(
    ("values", "shown", "hidden"),
    [
        ({"log_level": "WARNING"}, ["WARNING"], ["INFO", "DEBUG"]),
        ({}, ["WARNING", "INFO"], ["DEBUG"]),  # LOG_LEVEL's default
        ({"log_level": "WARNING", "debug": True}, ["WARNING", "INFO", "DEBUG"], []),  # DEBUG wins
    ],
)
def test_log_level_and_debug_choose_what_is_logged(
    values: dict, shown: list[str], hidden: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    try:
        configure_logging(Settings(_env_file=None, **values), "api")  # type: ignore[call-arg]
        for name in ("DEBUG", "INFO", "WARNING"):
            logging.getLogger("qtq.test").log(getattr(logging, name), "a %s line", name)
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers
    logged = capsys.readouterr().err
    for name in shown:
        assert re.search(rf" {name} api\[\d+\] qtq.test: a {name} line$", logged, re.M), logged
    for name in hidden:
        assert f"a {name} line" not in logged
