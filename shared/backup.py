"""`python -m shared.backup DEST`: a consistent copy of the SQLite database, taken while the service runs.

SQLite's online backup copies every page inside one read transaction: a snapshot of one instant
(WAL mode lets the API and the workers go on writing meanwhile). The copy is written next to DEST,
checked, synced and then renamed into place, so DEST is never a half-written file.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

from shared.config import Settings, get_settings
from shared.errors import BackupError


def back_up(settings: Settings, dest: Path, force: bool = False) -> str:
    """Copy the configured SQLite database to dest; the one line saying what was written."""
    if settings.database_url:
        raise BackupError(
            "DATABASE_URL selects PostgreSQL; back it up with `pg_dump -Fc` (see the README's Backups section)"
        )
    source = Path(settings.database_name)
    if not source.is_file():
        raise BackupError(f"no SQLite database at {str(source)!r} (DATABASE_NAME)")
    if dest.exists() and not force:
        raise BackupError(f"{str(dest)!r} exists; pass --force to replace it")
    started = time.monotonic()
    try:
        fd, partial = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial")
        os.close(fd)
    except OSError as error:
        raise BackupError(f"cannot write {str(dest)!r}: {error.strerror}") from error
    try:
        tasks = _copy(source, Path(partial), settings.busy_timeout_ms / 1000)
        with open(partial, "rb") as copy:
            os.fsync(copy.fileno())
        os.replace(partial, dest)
    except sqlite3.Error as error:
        raise BackupError(f"cannot copy {str(source)!r}: {error}") from error
    except OSError as error:
        raise BackupError(f"cannot write {str(dest)!r}: {error.strerror}") from error
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(partial)
    size = dest.stat().st_size
    took = time.monotonic() - started
    noun = "task" if tasks == 1 else "tasks"
    return f"backup: wrote {dest} ({tasks:,} {noun}, {size:,} bytes) from {source} in {took:.2f} s"


def _copy(source: Path, partial: Path, timeout: float) -> int:
    """Copy source into partial in one step (one snapshot), check the copy; its number of tasks."""
    # mode=rw: never create an empty database where the service's is missing.
    src = sqlite3.connect(f"file:{urllib.parse.quote(str(source))}?mode=rw", uri=True, timeout=timeout)
    dst = sqlite3.connect(partial)
    try:
        src.backup(dst)  # pages=-1: every page in one step, under one read transaction
    finally:
        dst.close()
        src.close()
    check = sqlite3.connect(partial)
    try:
        verdict = check.execute("PRAGMA quick_check").fetchone()[0]
        if verdict != "ok":
            # SQLite's first finding, on one line (it starts "*** in database main ***\n").
            finding = " ".join(verdict.replace("*** in database main ***", "").split())
            raise BackupError(f"the copy of {str(source)!r} fails its check: {finding}")
        return int(check.execute("SELECT count(*) FROM tasks").fetchone()[0])
    finally:
        check.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shared.backup",
        description="Copy the SQLite database (DATABASE_NAME) to DEST while the service runs.",
    )
    parser.add_argument("dest", type=Path, help="the backup file to write")
    parser.add_argument("--force", action="store_true", help="replace DEST if it exists")
    args = parser.parse_args(argv)
    try:
        print(back_up(get_settings(), args.dest, args.force))
    except BackupError as error:
        print(f"BackupError: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
