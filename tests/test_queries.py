"""The SQL written once for both backends: psycopg's copy is converted mechanically, and each dialect fills the gaps."""

from __future__ import annotations

import pytest

from shared.postgres_sql import PostgresQueries, to_pyformat
from shared.queries import Queries
from shared.sqlite_sql import SqliteQueries

pytestmark = pytest.mark.database_independent


@pytest.mark.parametrize(
    ("written", "converted"),
    [
        ("SELECT 1 FROM t WHERE id = :id AND n < :max_n", "SELECT 1 FROM t WHERE id = %(id)s AND n < %(max_n)s"),
        ("SELECT :bounds::float8[] || 'Infinity'::float8", "SELECT %(bounds)s::float8[] || 'Infinity'::float8"),
        ("WHERE name LIKE 'finished_%' AND n % 16 = 0", "WHERE name LIKE 'finished_%%' AND n %% 16 = 0"),
        ("SET error = 'Lost: it''s :gone' || :why", "SET error = 'Lost: it''s :gone' || %(why)s"),
    ],
)
def test_placeholders_and_percent_signs_are_converted_for_psycopg(written: str, converted: str) -> None:
    assert to_pyformat(written) == converted


def test_each_dialect_writes_what_the_shared_statements_leave_out() -> None:
    for dialect in (SqliteQueries, PostgresQueries):
        missing = [name for name in Queries.__annotations__ if name not in vars(dialect)]
        assert not missing, f"{dialect.__name__} lacks {missing}"


def test_postgres_runs_every_shared_statement_converted() -> None:
    shared = [name for name in vars(Queries) if name.isupper()]
    assert shared
    for name in shared:
        written = getattr(Queries, name)
        # Only the clock differs: each dialect writes its own where AT_NOW reads it.
        assert PostgresQueries.__dict__[name] == to_pyformat(written.replace("{now}", PostgresQueries.NOW)), name
        assert getattr(SqliteQueries, name) == written.replace("{now}", SqliteQueries.NOW), name
