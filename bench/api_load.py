"""The API alone under load from wrk, beside the minimal FastAPI + SQLite app, in the same run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.circuits import BELL
from harness.processes import ROOT, free_port, http_get, wait_for

WRK = ["wrk", "-t2", "-c16", "-d5s"]


def _wrk(url: str, method: str = "GET", body: str | None = None) -> float:
    script = Path(tempfile.mkdtemp()) / "request.lua"
    lines = [f'wrk.method = "{method}"', 'wrk.headers["Content-Type"] = "application/json"']
    if body is not None:
        lines.append(f"wrk.body = {json.dumps(body)}")
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run([*WRK, "-s", str(script), url], capture_output=True, text=True, check=True).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert non_2xx is None, f"wrk saw errors:\n{out}"
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def _serve(app: str, env: dict[str, str], factory: bool = False) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    options = ["--factory"] if factory else []
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            *options,
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        cwd=tempfile.mkdtemp(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return http_get(base + "/openapi.json", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, 60, f"{app} to start")
    return process, base


def measure(database_env: dict[str, str]) -> dict[str, float]:
    """POST and GET requests/s of the service's API and of the minimal app."""
    body = json.dumps({"circuit": BELL, "shots": 1024})
    results: dict[str, float] = {}
    ours, base = _serve("api_server.app:create_app", {**database_env, "LOG_LEVEL": "WARNING"}, factory=True)
    try:
        task_id = httpx.post(base + "/tasks", content=body, headers={"content-type": "application/json"}).json()[
            "task_id"
        ]
        results["service_post"] = _wrk(base + "/tasks", "POST", body)
        results["service_get"] = _wrk(f"{base}/tasks/{task_id}")
    finally:
        ours.terminate()
        ours.wait(30)
    minimal, base = _serve("bench.minimal_app:app", {"MINIMAL_DB": str(Path(tempfile.mkdtemp()) / "m.db")})
    try:
        item = httpx.post(base + "/items", content=body, headers={"content-type": "application/json"}).json()["id"]
        results["minimal_post"] = _wrk(base + "/items", "POST", body)
        results["minimal_get"] = _wrk(f"{base}/items/{item}")
    finally:
        minimal.terminate()
        minimal.wait(30)
    time.sleep(0.5)
    return results
