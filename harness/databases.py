"""Fresh databases for tests: a temporary SQLite file, or a new PostgreSQL database dropped afterwards."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row

# Set by conftest from `--backend`: which database the whole session's services use.
BACKEND = "sqlite"


def admin_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL", "")
    assert url, "--backend=postgres needs TEST_DATABASE_URL, e.g. postgresql://postgres@127.0.0.1:5432/test"
    return url


def _with_dbname(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


class FreshDatabase:
    """One fresh database of the session's backend, its settings, and a few direct operations.

    On PostgreSQL it is created on the server TEST_DATABASE_URL names, or on the one `admin` names
    (a URL of a database there to connect to while creating and dropping it)."""

    def __init__(self, workdir: Path, backend: str | None = None, admin: str | None = None) -> None:
        self.backend = backend or BACKEND
        self.path = workdir / "tasks.db"
        self.url = ""
        self.name = ""
        self.admin = ""
        if self.backend == "postgres":
            self.admin = admin or admin_url()
            self.name = f"qtq_test_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(self.admin, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')
            self.url = _with_dbname(self.admin, self.name)

    def settings(self) -> dict[str, str]:
        if self.backend == "postgres":
            return {"DATABASE_URL": self.url}
        return {"DATABASE_NAME": str(self.path), "DATABASE_URL": ""}

    def rows(self) -> dict[str, dict[str, Any]]:
        """Every task row, read straight from the database."""
        if self.backend == "postgres":
            with psycopg.connect(self.url, row_factory=dict_row) as conn:
                return {r["id"]: r for r in conn.execute("SELECT * FROM tasks")}
        lite = sqlite3.connect(self.path)
        lite.row_factory = sqlite3.Row
        try:
            return {r["id"]: dict(r) for r in lite.execute("SELECT * FROM tasks")}
        finally:
            lite.close()

    def execute(self, statement: str) -> None:
        """Run one statement (no parameters) and commit it."""
        if self.backend == "postgres":
            with psycopg.connect(self.url) as conn:
                conn.execute(statement.encode())  # bytes: a `%` in it is not a placeholder
            return
        lite = sqlite3.connect(self.path)
        try:
            with lite:
                lite.execute(statement)
        finally:
            lite.close()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold a lock that keeps every writer out until the block ends."""
        if self.backend == "postgres":
            with psycopg.connect(self.url) as conn:
                conn.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
                yield
                conn.rollback()
            return
        holder = sqlite3.connect(self.path, isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()

    @contextlib.contextmanager
    def unreachable(self) -> Iterator[None]:
        """Make the database impossible to open until the block ends."""
        if self.backend == "postgres":
            with psycopg.connect(self.admin, autocommit=True) as admin:
                admin.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [self.name])
                try:
                    yield
                finally:
                    admin.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')
            return
        moved = self.path.with_suffix(".away")
        shutil.move(self.path, moved)
        self.path.mkdir()  # a directory where the file was: nothing can open it
        try:
            yield
        finally:
            self.path.rmdir()
            shutil.move(moved, self.path)

    def drop(self) -> None:
        if self.backend == "postgres":
            with psycopg.connect(self.admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
