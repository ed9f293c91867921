"""A PostgreSQL server of a test's own, which the test may stop and start again.

The server TEST_DATABASE_URL names serves every test file at once (they run in parallel): a test
that takes the server down takes down its own, made with Debian's initdb in a temporary
directory and listening on a free port of 127.0.0.1.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from harness.processes import free_port
from tests.network import Host

DEFAULT_PORT = 5432


def server_binaries() -> Path | None:
    """The newest installed PostgreSQL's bin directory with initdb and pg_ctl, if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found and Path(found[-1]).with_name("initdb").exists() else None


class PrivateServer:
    """initdb, pg_ctl start, stop and start again; `url` reaches its `postgres` database.

    On 127.0.0.1, or, given a `host` (tests.network), inside its namespace on each of its links:
    then `url` names every link's address, in order (libpq tries them in turn).

    PostgreSQL refuses to run as root: then the server runs as the `postgres` user (runuser)."""

    def __init__(self, host: Host | None = None) -> None:
        bindir = server_binaries()
        if bindir is None:
            pytest.skip("PostgreSQL's server programs (initdb, pg_ctl) are not installed: no server to restart")
        self.bindir = bindir
        self.host = host
        self.dir = Path(tempfile.mkdtemp(prefix="qtq-pg-"))
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data = self.dir / "data"
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        if host is not None:
            # A namespace of its own: the port is free there, and the server answers on each link.
            self.port = DEFAULT_PORT
            self.listen = ",".join(link.address for link in host.links)
            self.url = (
                f"postgresql://postgres@{','.join(f'{link.address}:{self.port}' for link in host.links)}/postgres"
            )
            with open(self.data / "pg_hba.conf", "a") as hba:
                hba.write("host all all 10.231.0.0/16 trust\n")
            self.start()
            return
        self.listen = "127.0.0.1"
        # The server binds its port itself, so a port free a moment ago may be taken by the time it
        # starts: then it tries another.
        for _ in range(5):
            self.port = free_port()
            self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
            before = len(self.log())
            if self._ctl("start", check=False):
                return
            if "Address already in use" not in self.log()[before:]:
                break
        raise AssertionError(f"the test's own PostgreSQL server did not start:\n{self.log()[-3000:]}")

    def log(self) -> str:
        path = self.dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _run(self, program: str, *args: str, check: bool = True) -> bool:
        command = [*self.as_user, str(self.bindir / program), *args]
        if program == "pg_ctl" and self.host is not None:
            command = self.host.run(command)
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0 or not check, f"{program} failed: {done.stdout}{done.stderr}"
        return done.returncode == 0

    def _ctl(self, *args: str, check: bool = True) -> bool:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses={self.listen} -c fsync=off"
        log = str(self.dir / "server.log")
        return self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", *args, check=check)

    def start(self) -> None:
        """Start the server; returns once it accepts connections."""
        self._ctl("start")

    def stop(self) -> None:
        """Stop the server the way an operator restarting it would: every session is ended."""
        self._ctl("-m", "fast", "stop")

    def remove(self) -> None:
        self._ctl("-m", "immediate", "stop", check=False)  # it may be stopped already
        shutil.rmtree(self.dir, ignore_errors=True)
