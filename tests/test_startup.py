"""Start-up: bad settings stop a process with the key's name; `make run`'s script starts and stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from harness.databases import FreshDatabase
from tests.services import BELL_QASM3, ROOT, free_port, http_client, http_get, submit, wait_done, wait_for

pytestmark = pytest.mark.local


def _run(module: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_NAME": str(tmp_path / "t.db"), **env}
    return subprocess.run(
        [sys.executable, "-m", module], env=full_env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("module", "key", "value"),
    [
        ("api_server.main", "API_PORT", "eighty"),
        ("api_server.main", "API_PORT", "70000"),
        ("api_server.main", "MAX_SHOTS", "0"),
        ("api_server.main", "DEBUG", "maybe"),
        ("api_server.main", "ALLOWED_HOSTS", "[]"),
        ("api_server.main", "ALLOWED_HOSTS", "[not json"),
        ("api_server.main", "HEADER_TIMEOUT_SECONDS", "0"),
        ("worker.main", "LEASE_SECONDS", "-1"),
        ("worker.main", "POLL_INTERVAL_SECONDS", "soon"),
        ("worker.main", "TASK_TIMEOUT_SECONDS", "0"),
    ],
)
def test_bad_setting_stops_start_up_naming_the_key(tmp_path: Path, module: str, key: str, value: str) -> None:
    result = _run(module, tmp_path, **{key: value})
    assert result.returncode == 2
    assert result.stderr.startswith(f"ConfigError: {key}: "), result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_worker_that_cannot_start_simulations_says_so_in_one_line(tmp_path: Path) -> None:
    # The simulation fork server listens on a socket under TMPDIR: past the 107 bytes of a socket's
    # address there is none (docs/operations.md), and the worker stops with one line, not a traceback.
    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    result = _run("worker.main", tmp_path, TMPDIR=str(deep))
    assert result.returncode == 1, result.stderr
    assert "cannot run simulations, stopping: cannot start the simulation fork server: " in result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def test_default_shots_above_max_shots_is_refused(tmp_path: Path) -> None:
    result = _run("api_server.main", tmp_path, DEFAULT_SHOTS="500", MAX_SHOTS="100")
    assert result.returncode == 2
    assert "DEFAULT_SHOTS (500) must not exceed MAX_SHOTS (100)" in result.stderr


def test_settings_come_from_dotenv_in_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("API_PORT=not-a-port\n")
    result = _run("api_server.main", tmp_path)
    assert result.returncode == 2 and "API_PORT" in result.stderr


def test_run_script_serves_bell_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port = free_port()
    database = FreshDatabase(tmp_path)
    env = {
        **os.environ,
        **database.settings(),
        "PY": sys.executable,
        "WORKERS": "2",
        "API_PORT": str(port),
        "POLL_INTERVAL_SECONDS": "0.01",
    }
    log = open(tmp_path / "run.log", "wb")
    runner = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "run.sh")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return http_get(f"{base}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 60, "the API started by scripts/run.sh")
        with http_client(base_url=base, timeout=30) as client:
            task = wait_done(client, submit(client, BELL_QASM3, shots=100))
        assert task["status"] == "completed"
        text = lambda: (tmp_path / "run.log").read_text()  # noqa: E731
        wait_for(lambda: text().count("started on database") == 2, 60, "both workers to start")
        os.killpg(runner.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
        assert runner.wait(60) == 0
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
        log.close()

    def group_gone() -> bool:
        found = subprocess.run(["pgrep", "-a", "-g", str(runner.pid)], capture_output=True, text=True)
        return found.stdout.strip() == ""

    # Helpers (multiprocessing's resource tracker) exit once their parent's pipe closes.
    wait_for(group_gone, 15, "every process of the run script to exit")
    database.drop()
    output = (tmp_path / "run.log").read_text()
    assert "Traceback" not in output, output[output.find("Traceback") - 1500 :]
    assert "stopping 3 processes..." in output
    assert "exited with status" not in output
