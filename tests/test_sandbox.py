"""How the worker gets a new simulation process when the fork server it forks them from has just
died: the fork server is started again once the kernel has reaped the dead one, and until then it
refuses connections (the real-process side is in test_crash.py)."""

from __future__ import annotations

import pytest

from worker import sandbox
from worker.sandbox import SimulationChild, SimulationUnavailable

pytestmark = pytest.mark.database_independent


class RefusingProcess:
    """A process whose start() fails `refusals` times, as with a fork server that died and is not
    yet replaced."""

    def __init__(self, refusals: int) -> None:
        self.refusals, self.calls = refusals, 0

    def start(self) -> None:
        self.calls += 1
        if self.calls == 1 and self.refusals:
            raise EOFError("unexpected EOF")  # it died between the connection and the fork
        if self.calls <= self.refusals:
            raise ConnectionRefusedError(111, "Connection refused")


def test_a_fork_server_not_yet_replaced_is_asked_again() -> None:
    process = RefusingProcess(3)
    SimulationChild._launch(process)
    assert process.calls == 4


def test_a_fork_server_that_cannot_be_started_is_not_asked_again() -> None:
    class Unstartable:
        calls = 0

        def start(self) -> None:
            self.calls += 1
            raise OSError("AF_UNIX path too long")

    process = Unstartable()
    with pytest.raises(SimulationUnavailable, match="^cannot start the simulation fork server: AF_UNIX path too long$"):
        SimulationChild._launch(process)
    assert process.calls == 1


def test_a_fork_server_that_never_answers_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "FORK_SERVER_GONE_SECONDS", 0.05)
    with pytest.raises(SimulationUnavailable, match=r"^the simulation fork server does not answer: \[Errno 111\]"):
        SimulationChild._launch(RefusingProcess(10**9))
