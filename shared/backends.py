"""Pick the store backend the settings name; kept apart from shared.store so that neither imports the other."""

from __future__ import annotations

from shared.config import Settings
from shared.store import Store


def open_store(settings: Settings, pool_size: int = 10) -> Store:
    """The store the settings select: PostgreSQL when DATABASE_URL is set, else SQLite at DATABASE_NAME."""
    if settings.database_url:
        from shared.postgres_store import PostgresStore  # psycopg is needed only for this backend

        return PostgresStore(
            settings.database_url,
            busy_timeout_ms=settings.busy_timeout_ms,
            poll_only=settings.database_poll_only,
            pool_size=pool_size,
        )
    from shared.sqlite_store import SqliteStore

    return SqliteStore(settings.database_name, busy_timeout_ms=settings.busy_timeout_ms)
