"""`python -m shared.backup DEST`: a consistent copy of the SQLite database while real processes write to it."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from shared.backup import back_up
from shared.config import Settings
from shared.models import NewTask
from shared.sqlite_store import SqliteStore
from tests.services import BELL_QASM3, ROOT, Cluster, assert_clean_logs, submit, wait_done, wait_for
from tests.test_concurrency import wait_all

pytestmark = pytest.mark.local
sqlite_only = pytest.mark.backend_only("sqlite")

WROTE = re.compile(r"backup: wrote (\S+) \(([\d,]+) tasks?, ([\d,]+) bytes\) from (\S+) in [\d.]+ s\n")


def backup(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the command as an operator would, in its own process."""
    command = [sys.executable, "-m", "shared.backup", *args]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


@sqlite_only
def test_backup_during_a_flood_holds_every_task_acknowledged_before_it(make_cluster, tmp_path: Path) -> None:
    cluster: Cluster = make_cluster()
    worker = cluster.start_worker(wait=False)
    api = cluster.start_api()
    worker.wait_log("started on database")
    acknowledged: list[str] = []
    answers: list[int] = []

    def flood(count: int) -> None:
        with cluster.client(timeout=10) as client:
            for _ in range(count):
                response = client.post("/tasks", json={"circuit": BELL_QASM3, "shots": 10})
                answers.append(response.status_code)
                if response.status_code == 202:
                    acknowledged.append(response.json()["task_id"])

    threads = [threading.Thread(target=flood, args=(250,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    # The backup runs in this process (the command's own code, `back_up`), so that the list of tasks
    # acknowledged before it is taken at the last moment: a plain copy of the file, which misses
    # what is still in the write-ahead log, fails this test.
    settings = Settings(_env_file=None, database_name=str(cluster.database.path))
    dest = tmp_path / "backup.db"
    try:
        wait_for(lambda: len(acknowledged) >= 300, 60, "300 acknowledged submissions")
        before = list(acknowledged)
        wrote = WROTE.fullmatch(back_up(settings, dest) + "\n")
        after = len(acknowledged)
    finally:
        for thread in threads:
            thread.join(60)
    assert wrote, "the backup's line does not say what it wrote"
    assert wrote[1] == str(dest) and wrote[4] == str(cluster.database.path)
    assert int(wrote[3].replace(",", "")) == dest.stat().st_size
    assert set(answers) == {202}, "a submission failed while the backup ran"
    assert len(acknowledged) == 1000 and after < 1000, "the backup did not run in the middle of the flood"

    with contextlib.closing(sqlite3.connect(dest)) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = {row[0]: row[1:] for row in copy.execute("SELECT id, status, result FROM tasks")}
    assert int(wrote[2].replace(",", "")) == len(rows)
    missing = set(before) - set(rows)
    assert not missing, f"{len(missing)} tasks acknowledged before the backup are not in it"
    assert set(rows) <= set(acknowledged) and len(rows) < 1000, "the backup is not one moment of the flood"
    assert all((status == "completed") == (result is not None) for status, result in rows.values())

    with cluster.client() as client:
        views = wait_all(client, acknowledged, timeout=120)
    assert all(view["status"] == "completed" for view in views.values())
    assert all(code == 0 for code in cluster.stop().values())
    assert_clean_logs(api)
    assert_clean_logs(worker)

    # Restored as the README says: service stopped, -wal and -shm deleted, the backup copied into place.
    database = cluster.database.path
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    shutil.copy(dest, database)
    cluster.start_api()
    with cluster.client() as client:
        assert client.get(f"/tasks/{before[-1]}").status_code == 200
        assert client.get(f"/tasks/{acknowledged[-1]}").status_code == 404
        queue = client.get("/health").json()["queue"]  # the counters are of the same instant as the rows
    assert {state: count for state, count in queue.items() if count} == dict(Counter(s for s, _ in rows.values()))


def _plain_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "PYTHON"))}
    return {**keep, "PYTHONPATH": str(ROOT), "DATABASE_NAME": "tasks.db", "DATABASE_URL": "", **settings}


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """A small SQLite database of the service's schema, holding one task."""
    store = SqliteStore(str(tmp_path / "tasks.db"))
    try:
        store.initialize()
        store.create_task("t1", NewTask(BELL_QASM3, 10, None), now=1.0)
    finally:
        store.close()
    return tmp_path / "tasks.db"


@sqlite_only
def test_backup_refuses_an_existing_destination_unless_forced(database: Path, tmp_path: Path) -> None:
    env = _plain_env(tmp_path)
    dest = tmp_path / "backup.db"
    dest.write_text("an older backup")
    refused = backup(env, tmp_path, "backup.db")
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr == "BackupError: 'backup.db' exists; pass --force to replace it\n"
    assert dest.read_text() == "an older backup"

    forced = backup(env, tmp_path, "backup.db", "--force")
    assert forced.returncode == 0, forced.stderr
    assert WROTE.fullmatch(forced.stdout) and "(1 task," in forced.stdout
    with contextlib.closing(sqlite3.connect(dest)) as copy:
        assert copy.execute("SELECT id FROM tasks").fetchall() == [("t1",)]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [], "a partial file was left"


@sqlite_only
@pytest.mark.parametrize(
    ("page", "damage", "error"),
    [
        (3, 100, "the copy of 'tasks.db' fails its check: Page 3: btreeInitPage() returns error code 11"),
        (4, 4096, "cannot copy 'tasks.db': database disk image is malformed"),
    ],
)
def test_a_damaged_database_is_not_backed_up_and_the_older_backup_stays(
    database: Path, tmp_path: Path, page: int, damage: int, error: str
) -> None:
    """The source is damaged on disk (part of one page overwritten): the copy fails SQLite's
    PRAGMA quick_check, or the copy itself; the command says so in one line, and DEST, even with
    --force, is the older backup, untouched."""
    with open(database, "r+b") as damaged:
        damaged.seek((page - 1) * 4096)
        damaged.write(b"\xff" * damage)
    dest = tmp_path / "backup.db"
    dest.write_text("an older backup")
    result = backup(_plain_env(tmp_path), tmp_path, "backup.db", "--force")
    assert (result.returncode, result.stdout, result.stderr) == (1, "", f"BackupError: {error}\n")
    assert dest.read_text() == "an older backup"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [], "a partial file was left"


@sqlite_only
def test_a_backup_killed_mid_copy_leaves_the_older_backup_as_it_was(database: Path, tmp_path: Path) -> None:
    """SIGKILL (a reboot, the OOM killer) while the pages are being copied: DEST is still the older
    backup, the database still whole; what is left is the hidden partial copy beside DEST."""
    store = SqliteStore(str(database))
    try:  # about 100 MB, so that the copy takes long enough to be caught in the middle
        for number in range(100):
            store.create_task(f"big{number}", NewTask(BELL_QASM3 + "//" + "x" * 1_000_000, 10, None), now=2.0)
    finally:
        store.close()
    dest = tmp_path / "backup.db"
    dest.write_text("an older backup")
    command = [sys.executable, "-m", "shared.backup", "--force", "backup.db"]
    running = subprocess.Popen(command, env=_plain_env(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        partial = wait_for(
            lambda: next((p for p in tmp_path.glob(".backup.db.*.partial") if p.stat().st_size > 0), None),
            30,
            "the copy to begin",
            interval=0.005,
        )
        running.kill()
        assert running.wait(10) == -signal.SIGKILL
    finally:
        running.kill()
        assert running.stdout is not None
        output = running.stdout.read()
        running.stdout.close()
    assert output == "", f"the backup finished before it was killed: {output}"
    assert dest.read_text() == "an older backup"
    assert partial is not None and partial.exists() and partial.stat().st_size < database.stat().st_size
    with contextlib.closing(sqlite3.connect(database)) as source:
        assert source.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert source.execute("SELECT count(*) FROM tasks").fetchone() == (101,)


@sqlite_only
def test_backup_of_a_missing_database_creates_nothing(tmp_path: Path) -> None:
    result = backup(_plain_env(tmp_path), tmp_path, "backup.db")
    assert result.returncode == 1
    assert result.stderr == "BackupError: no SQLite database at 'tasks.db' (DATABASE_NAME)\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@sqlite_only  # no PostgreSQL server is used: the command refuses before connecting
def test_backup_of_postgresql_points_to_pg_dump(tmp_path: Path) -> None:
    env = _plain_env(tmp_path, DATABASE_URL="postgresql://qtq@127.0.0.1:1/qtq")
    result = backup(env, tmp_path, "backup.db")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        "BackupError: DATABASE_URL selects PostgreSQL; "
        "back it up with `pg_dump -Fc` (see the README's Backups section)\n"
    )
    assert not (tmp_path / "backup.db").exists()


@pytest.mark.backend_only("postgres")
def test_postgres_backup_and_restore_as_the_readme_says(make_cluster, tmp_path: Path) -> None:
    cluster: Cluster = make_cluster()
    api = cluster.start_api()
    url, dump = cluster.database.url, tmp_path / "qtq.dump"
    with cluster.client() as client:
        early = submit(client, BELL_QASM3, shots=10)
        subprocess.run(["pg_dump", "-Fc", url, "-f", str(dump)], check=True, timeout=60)
        later = submit(client, BELL_QASM3, shots=10)
    assert cluster.stop() == {api.log_path.name: 0}
    subprocess.run(["pg_restore", "--clean", "--if-exists", "-d", url, str(dump)], check=True, timeout=60)
    cluster.start_api()
    cluster.start_worker()
    with cluster.client() as client:
        assert wait_done(client, early)["status"] == "completed"
        assert client.get(f"/tasks/{later}").status_code == 404
        assert wait_done(client, submit(client, BELL_QASM3, shots=10))["status"] == "completed"
