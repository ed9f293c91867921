"""The SQLite file misbehaves under running processes: its disk fills up, it is moved away, another
file takes its place. Nothing acknowledged is lost, no request answers 500, and the service says
what is wrong in one line."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.filesystems import (
    DISK_FULL,
    assert_recovers,
    fill,
    one_running_and_five_waiting,
    small_filesystem,
    submit_until_full,
)
from tests.services import (
    BELL_QASM3,
    Cluster,
    app_client,
    assert_clean_logs,
    submit,
    wait_done,
)
from tests.test_auth import make_key

pytestmark = [pytest.mark.backend_only("sqlite"), pytest.mark.local]


def test_full_disk_answers_507_loses_nothing_and_recovers_when_space_returns(make_cluster, tmp_path: Path) -> None:
    """The database on an 8 MB tmpfs (a real filesystem, mounted for the test) filled to the last byte."""
    with small_filesystem(tmp_path / "disk", "8m") as disk:
        database = disk / "tasks.db"
        cluster: Cluster = make_cluster(DATABASE_NAME=database)
        worker = cluster.start_worker(wait=False)
        api = cluster.start_api()
        worker.wait_log("started on database")
        with cluster.client() as client:
            acknowledged = one_running_and_five_waiting(client)
            filler = fill(disk)

            submit_until_full(client, acknowledged, 50)  # the write-ahead log may have room for a commit or two
            # A batch too big for SQLite's page cache fails halfway through its transaction, not at COMMIT.
            padded = BELL_QASM3 + "// " + "x" * 3000 + "\n"
            batch = client.post("/batches", json={"tasks": [{"circuit": padded, "shots": 10}] * 1000})
            assert batch.status_code == 507, batch.text
            assert batch.json() == {"detail": DISK_FULL}
            # The worker cannot record the slow task's result: it says so and retries until it can.
            worker.wait_log("database write failed, retrying in 1 s: the disk holding database", timeout=30)
            assert worker.process is not None and worker.process.poll() is None

            filler.unlink()
            assert_recovers(client, acknowledged)
        assert "database disk full on POST /tasks" in api.log()
        codes = cluster.stop()
        assert all(code == 0 for code in codes.values()), codes
        assert_clean_logs(api)
        assert_clean_logs(worker)


def test_reads_with_a_key_go_on_while_the_disk_is_full(tmp_path: Path) -> None:
    """A key's last use is written at most once a minute, on its next request: on a full disk that
    write fails, and the read it came with must still be answered (it was a 507)."""
    with (
        small_filesystem(tmp_path / "disk", "8m") as disk,
        app_client(tmp_path, database_name=str(disk / "t.db")) as client,
    ):
        store = client.app.state.store  # type: ignore[attr-defined]
        writer, reader = make_key(store, "writer"), make_key(store, "reader", admin=True)
        client.headers.update(writer)
        acknowledged = [submit(client, BELL_QASM3, shots=10)]
        filler = fill(disk)
        try:
            submit_until_full(client, acknowledged, 50)
            for path in (f"/tasks/{acknowledged[0]}", "/tasks", "/usage", "/metrics", "/health"):
                answer = client.get(path, headers=reader)  # the reader's first use: its last use is due
                assert answer.status_code == 200, f"GET {path}: {answer.status_code} {answer.text}"
        finally:
            filler.unlink()
        assert client.get("/tasks", headers=reader).status_code == 200
        used = {key.name: key.last_used_at for key in store.list_keys()}
        assert used["reader"] is not None, "the reader's last use was not written once space was back"


def _backup(cluster: Cluster, dest: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "shared.backup", str(dest)],
        env=cluster.env(),
        cwd=cluster.workdir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_database_file_moved_away_and_back_then_replaced(make_cluster, tmp_path: Path) -> None:
    cluster: Cluster = make_cluster()
    worker = cluster.start_worker(wait=False)
    api = cluster.start_api()
    worker.wait_log("started on database")
    database = cluster.database.path
    with cluster.client() as client:
        early = wait_done(client, submit(client, BELL_QASM3, shots=10))["task_id"]
        _backup(cluster, tmp_path / "backup.db")
        later = wait_done(client, submit(client, BELL_QASM3, shots=10))["task_id"]

        # Moved away (or removed): every request is refused in one clear line, nothing takes its place.
        os.rename(database, tmp_path / "away.db")
        refused = client.post("/tasks", json={"circuit": BELL_QASM3, "shots": 10})
        assert refused.status_code == 503, refused.text
        assert refused.json() == {"detail": "Database is unavailable"}
        assert refused.headers["Retry-After"] == "1"
        assert client.get(f"/tasks/{early}").status_code == 503
        worker.wait_log("is missing (removed or moved away)")
        assert "is missing (removed or moved away)" in api.log()
        assert not database.exists(), "an empty database was created in place of the missing one"

        # Moved back: both processes carry on by themselves, nothing lost.
        os.rename(tmp_path / "away.db", database)
        assert wait_done(client, submit(client, BELL_QASM3, shots=10))["status"] == "completed"
        assert client.get(f"/tasks/{later}").json()["status"] == "completed"

        # Another file in its place (a backup restored while the service runs): never opened.
        shutil.copy(tmp_path / "backup.db", tmp_path / "restored.db")
        os.replace(tmp_path / "restored.db", database)
        refused = client.post("/tasks", json={"circuit": BELL_QASM3, "shots": 10})
        assert refused.status_code == 503, refused.text
        assert refused.json() == {"detail": "Database is unavailable"}
        worker.wait_log("was replaced by another file; to use it, stop the service")
        assert "was replaced by another file; to use it, stop the service" in api.log()

    # Restarted as the log says (and as the README's restore does), the processes use the new file:
    # the backup's tasks, not the later ones, and no page of the old file's write-ahead log.
    assert cluster.stop() == {api.log_path.name: 0, worker.log_path.name: 0}
    for service in (api, worker):
        assert_clean_logs(service)
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    cluster.start_api()
    cluster.start_worker()
    with cluster.client() as client:
        assert client.get(f"/tasks/{early}").json()["status"] == "completed"
        assert client.get(f"/tasks/{later}").status_code == 404
        assert wait_done(client, submit(client, BELL_QASM3, shots=10))["status"] == "completed"
    with contextlib.closing(sqlite3.connect(database)) as check:
        assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
