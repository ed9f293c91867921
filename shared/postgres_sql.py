"""The SQL only the PostgreSQL backend runs: its schema, and the statements its dialect writes its own way.

The rest is written once for both backends in shared.queries and converted here, once, to
psycopg's placeholders. What is written here is in psycopg's style already. Parameters are always bound.
"""

from __future__ import annotations

import re

from shared.metrics_buckets import QUEUE_WAIT_BUCKETS, RUN_TIME_BUCKETS
from shared.queries import TASK_COLUMNS, Q, Queries, with_clock

CHANNEL = "qtq_tasks"
LISTEN = f"LISTEN {CHANNEL}"
# Rung after tasks become final, for the APIs' long-polls (see PostgresStore.finished_bell).
FINISHED_CHANNEL = "qtq_finished"
LISTEN_FINISHED = f"LISTEN {FINISHED_CHANNEL}"
NOTIFY_FINISHED = f"NOTIFY {FINISHED_CHANNEL}"
# Counter rows are spread over shards chosen by the writing backend's pid, so concurrent
# transactions from many API and worker connections rarely wait on the same row.
SHARDS = 16

# Serialises schema changes when several processes start at once.
SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(7123504211)"

SCHEMA_VERSION_TABLE = "CREATE TABLE IF NOT EXISTS qtq_schema (version INTEGER NOT NULL)"
SELECT_VERSION = "SELECT max(version) AS version FROM qtq_schema"
RECORD_VERSION = "INSERT INTO qtq_schema (version) VALUES (%(version)s)"

MIGRATIONS: list[list[str]] = [
    [
        """
        CREATE TABLE tasks (
            seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id               TEXT             NOT NULL UNIQUE,
            status           TEXT             NOT NULL,
            circuit          TEXT             NOT NULL,
            shots            INTEGER          NOT NULL,
            seed             BIGINT,
            created_at       DOUBLE PRECISION NOT NULL,
            started_at       DOUBLE PRECISION,
            finished_at      DOUBLE PRECISION,
            result           TEXT,
            error            TEXT,
            attempts         INTEGER          NOT NULL DEFAULT 0,
            worker_id        TEXT,
            lease_expires_at DOUBLE PRECISION,
            num_qubits       INTEGER,
            depth            INTEGER,
            duration_ms      DOUBLE PRECISION,
            diagram          TEXT,
            cancel_requested BOOLEAN          NOT NULL DEFAULT FALSE
        )
        """,
        # The claim reads the oldest submitted task: an index scan on this partial index.
        "CREATE INDEX tasks_submitted_by_seq ON tasks (seq) WHERE status = 'submitted'",
        "CREATE INDEX tasks_pending_by_lease ON tasks (lease_expires_at) WHERE status = 'pending'",
        "CREATE INDEX tasks_by_status_seq ON tasks (status, seq)",
        "CREATE INDEX tasks_finished_at ON tasks (finished_at) WHERE finished_at IS NOT NULL",
        """
        CREATE TABLE workers (
            id             TEXT PRIMARY KEY,
            host           TEXT NOT NULL,
            pid            INTEGER NOT NULL,
            started_at     DOUBLE PRECISION NOT NULL,
            last_heartbeat DOUBLE PRECISION NOT NULL,
            task_id        TEXT
        )
        """,
        "CREATE TABLE task_counts (status TEXT NOT NULL, shard INTEGER NOT NULL, n BIGINT NOT NULL,"
        " PRIMARY KEY (status, shard))",
        "CREATE TABLE counters (name TEXT NOT NULL, shard INTEGER NOT NULL, value DOUBLE PRECISION NOT NULL,"
        " PRIMARY KEY (name, shard))",
        # le is +Infinity for the last bucket (a float PostgreSQL compares like any other).
        "CREATE TABLE histogram_buckets (metric TEXT NOT NULL, le DOUBLE PRECISION NOT NULL,"
        " shard INTEGER NOT NULL, count BIGINT NOT NULL, PRIMARY KEY (metric, le, shard))",
        f"""
        CREATE FUNCTION qtq_bump(counter TEXT, amount DOUBLE PRECISION) RETURNS void LANGUAGE sql AS $$
            INSERT INTO counters (name, shard, value) VALUES (counter, pg_backend_pid() % {SHARDS}, amount)
            ON CONFLICT (name, shard) DO UPDATE SET value = counters.value + excluded.value
        $$
        """,
        f"""
        CREATE FUNCTION qtq_count(state TEXT, delta BIGINT) RETURNS void LANGUAGE sql AS $$
            INSERT INTO task_counts (status, shard, n) VALUES (state, pg_backend_pid() % {SHARDS}, delta)
            ON CONFLICT (status, shard) DO UPDATE SET n = task_counts.n + excluded.n
        $$
        """,
        f"""
        CREATE FUNCTION qtq_observe(name TEXT, seconds DOUBLE PRECISION) RETURNS void LANGUAGE sql AS $$
            INSERT INTO histogram_buckets (metric, le, shard, count)
            SELECT name, bound, pg_backend_pid() % {SHARDS}, 1
            FROM unnest(CASE name WHEN 'queue_wait' THEN ARRAY{list(QUEUE_WAIT_BUCKETS)}::float8[]
                                  ELSE ARRAY{list(RUN_TIME_BUCKETS)}::float8[] END
                        || 'Infinity'::float8) AS bound
            WHERE bound >= seconds
            ON CONFLICT (metric, le, shard) DO UPDATE SET count = histogram_buckets.count + 1;
            SELECT qtq_bump(name || '_sum', seconds)
        $$
        """,
        f"""
        CREATE FUNCTION qtq_tasks_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                PERFORM qtq_count(NEW.status, 1);
                PERFORM qtq_bump('submitted_total', 1);
                PERFORM pg_notify('{CHANNEL}', '');
            ELSIF TG_OP = 'DELETE' THEN
                PERFORM qtq_count(OLD.status, -1);
            ELSIF OLD.status <> NEW.status THEN
                PERFORM qtq_count(OLD.status, -1);
                PERFORM qtq_count(NEW.status, 1);
                IF NEW.status = 'pending' THEN
                    PERFORM qtq_observe('queue_wait', NEW.started_at - NEW.created_at);
                ELSIF NEW.status = 'submitted' THEN
                    PERFORM pg_notify('{CHANNEL}', '');
                ELSE
                    PERFORM qtq_bump('finished_' || NEW.status, 1);
                    IF OLD.status = 'pending' AND NEW.started_at IS NOT NULL THEN
                        PERFORM qtq_observe('run_time', NEW.finished_at - NEW.started_at);
                    END IF;
                END IF;
            END IF;
            RETURN NULL;
        END
        $$
        """,
        "CREATE TRIGGER tasks_changed AFTER INSERT OR DELETE OR UPDATE OF status ON tasks"
        " FOR EACH ROW EXECUTE FUNCTION qtq_tasks_changed()",
    ],
]

MIGRATIONS.append(
    # 2: where a task's time went, besides the simulation itself.
    [
        "ALTER TABLE tasks ADD COLUMN parse_ms DOUBLE PRECISION",
        "ALTER TABLE tasks ADD COLUMN transpile_ms DOUBLE PRECISION",
    ]
)

MIGRATIONS.append(
    # 3: the bytes of circuit text waiting or running, kept by a trigger for MAX_QUEUED_BYTES.
    [
        "ALTER TABLE tasks ADD COLUMN circuit_bytes BIGINT NOT NULL DEFAULT 0",
        "UPDATE tasks SET circuit_bytes = octet_length(circuit) WHERE status IN ('submitted', 'pending')",
        """
        INSERT INTO counters (name, shard, value)
        SELECT 'queued_bytes', 0, coalesce(sum(circuit_bytes), 0) FROM tasks WHERE status IN ('submitted', 'pending')
        """,
        """
        CREATE FUNCTION qtq_queued_bytes() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                PERFORM qtq_bump('queued_bytes', NEW.circuit_bytes);
            ELSIF TG_OP = 'DELETE' THEN
                IF OLD.status IN ('submitted', 'pending') THEN
                    PERFORM qtq_bump('queued_bytes', -OLD.circuit_bytes);
                END IF;
            ELSIF OLD.status IN ('submitted', 'pending') AND NEW.status IN ('completed', 'failed', 'cancelled') THEN
                PERFORM qtq_bump('queued_bytes', -NEW.circuit_bytes);
            END IF;
            RETURN NULL;
        END
        $$
        """,
        "CREATE TRIGGER tasks_queued_bytes AFTER INSERT OR DELETE OR UPDATE OF status ON tasks"
        " FOR EACH ROW EXECUTE FUNCTION qtq_queued_bytes()",
    ]
)

MIGRATIONS.append(
    # 4: what a task asked for beyond circuit, shots and seed (sweep parameters, observables,
    # memory, method, noise), and what it produced beyond counts; both JSON text.
    ["ALTER TABLE tasks ADD COLUMN options TEXT", "ALTER TABLE tasks ADD COLUMN output TEXT"]
)

MIGRATIONS.append(
    # 5: Idempotency-Key: the first request's task, kept IDEMPOTENCY_TTL_HOURS.
    [
        """
        CREATE TABLE idempotency_keys (
            key          TEXT PRIMARY KEY,
            request_hash TEXT NOT NULL,
            task_id      TEXT NOT NULL,
            created_at   DOUBLE PRECISION NOT NULL
        )
        """,
        "CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at)",
    ]
)

MIGRATIONS.append(
    # 6: tags: shown from the task's JSON, filtered through task_tags (key, value, seq) so that a
    # tag filter walks an index in seq order.
    [
        "ALTER TABLE tasks ADD COLUMN tags TEXT",
        """
        CREATE TABLE task_tags (
            key      TEXT   NOT NULL,
            value    TEXT   NOT NULL,
            task_seq BIGINT NOT NULL REFERENCES tasks (seq) ON DELETE CASCADE,
            PRIMARY KEY (key, value, task_seq)
        )
        """,
        "CREATE INDEX task_tags_by_task ON task_tags (task_seq)",
    ]
)

MIGRATIONS.append(
    # 7: batches: many tasks submitted as one unit, in request order.
    [
        """
        CREATE TABLE batches (
            seq        BIGSERIAL PRIMARY KEY,
            id         TEXT NOT NULL UNIQUE,
            created_at DOUBLE PRECISION NOT NULL,
            total      INTEGER NOT NULL,
            tags       TEXT
        )
        """,
        "ALTER TABLE tasks ADD COLUMN batch_id TEXT",
        "ALTER TABLE tasks ADD COLUMN batch_index INTEGER",
        "CREATE INDEX tasks_by_batch ON tasks (batch_id, batch_index) WHERE batch_id IS NOT NULL",
    ]
)

MIGRATIONS.append(
    # 9: API keys, task owners, fair-share turns and usage.
    [
        """
        CREATE TABLE api_keys (
            id           TEXT    PRIMARY KEY,
            name         TEXT    NOT NULL UNIQUE,
            token_hash   TEXT    NOT NULL UNIQUE,
            admin        BOOLEAN NOT NULL DEFAULT FALSE,
            max_queued   INTEGER,
            created_at   DOUBLE PRECISION NOT NULL,
            last_used_at DOUBLE PRECISION,
            revoked_at   DOUBLE PRECISION
        )
        """,
        """
        CREATE TABLE key_usage (
            owner              TEXT    NOT NULL,
            day                INTEGER NOT NULL,
            shard              INTEGER NOT NULL,
            submitted          BIGINT  NOT NULL,
            shots              BIGINT  NOT NULL,
            simulation_seconds DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (owner, day, shard)
        )
        """,
        "ALTER TABLE tasks ADD COLUMN owner TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE tasks ADD COLUMN turn BIGINT NOT NULL DEFAULT 0",
        "ALTER TABLE batches ADD COLUMN owner TEXT NOT NULL DEFAULT ''",
        # Claims walk the waiting tasks in turn order (the old order by seq alone is gone).
        "DROP INDEX tasks_submitted_by_seq",
        "CREATE INDEX tasks_submitted_by_turn ON tasks (turn, seq) WHERE status = 'submitted'",
        # An owner's last turn and its count of waiting and running tasks (max_queued).
        "CREATE INDEX tasks_waiting_by_owner ON tasks (owner, status, turn) WHERE status IN ('submitted', 'pending')",
        # A key's own list, newest first.
        "CREATE INDEX tasks_by_owner_seq ON tasks (owner, seq)",
    ]
)

# The task rows a statement changed the status of, old and new side by side (transition tables).
_CHANGED = "old_rows o JOIN new_rows n ON n.seq = o.seq WHERE o.status <> n.status"
_FINAL = "('completed', 'failed', 'cancelled')"

MIGRATIONS.append(
    # 8: the counters kept once per statement instead of once per row. Row triggers made a batch
    # of N tasks update the same counter rows N times in one transaction, and PostgreSQL walks
    # every earlier version of such a row on each update: 10,000 tasks took 19 s to insert (and
    # as long to cancel). Statement triggers read the rows from transition tables and add each
    # counter once.
    [
        "DROP TRIGGER tasks_changed ON tasks",
        "DROP TRIGGER tasks_queued_bytes ON tasks",
        f"""
        CREATE FUNCTION qtq_observe_all(metric_name TEXT, samples DOUBLE PRECISION[]) RETURNS void
        LANGUAGE plpgsql AS $$
        BEGIN
            IF cardinality(samples) = 0 THEN
                RETURN;
            END IF;
            INSERT INTO histogram_buckets (metric, le, shard, count)
            SELECT metric_name, bound, pg_backend_pid() % {SHARDS}, count(*)
            FROM unnest(samples) AS seconds
            CROSS JOIN unnest(CASE metric_name WHEN 'queue_wait' THEN ARRAY{list(QUEUE_WAIT_BUCKETS)}::float8[]
                                               ELSE ARRAY{list(RUN_TIME_BUCKETS)}::float8[] END
                              || 'Infinity'::float8) AS bound
            WHERE bound >= seconds
            GROUP BY bound
            ON CONFLICT (metric, le, shard) DO UPDATE SET count = histogram_buckets.count + excluded.count;
            PERFORM qtq_bump(metric_name || '_sum', (SELECT sum(s) FROM unnest(samples) AS s));
        END
        $$
        """,
        f"""
        CREATE FUNCTION qtq_tasks_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            added BIGINT;
            bytes DOUBLE PRECISION;
        BEGIN
            SELECT count(*), coalesce(sum(circuit_bytes), 0) INTO added, bytes FROM new_rows;
            IF added = 0 THEN
                RETURN NULL;
            END IF;
            INSERT INTO task_counts (status, shard, n)
            SELECT status, pg_backend_pid() % {SHARDS}, count(*) FROM new_rows GROUP BY status
            ON CONFLICT (status, shard) DO UPDATE SET n = task_counts.n + excluded.n;
            PERFORM qtq_bump('submitted_total', added);
            PERFORM qtq_bump('queued_bytes', bytes);
            PERFORM pg_notify('{CHANNEL}', '');
            RETURN NULL;
        END
        $$
        """,
        f"""
        CREATE FUNCTION qtq_tasks_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            bytes DOUBLE PRECISION;
        BEGIN
            INSERT INTO task_counts (status, shard, n)
            SELECT status, pg_backend_pid() % {SHARDS}, -count(*) FROM old_rows GROUP BY status
            ON CONFLICT (status, shard) DO UPDATE SET n = task_counts.n + excluded.n;
            SELECT coalesce(sum(circuit_bytes), 0) INTO bytes FROM old_rows WHERE status IN ('submitted', 'pending');
            IF bytes <> 0 THEN
                PERFORM qtq_bump('queued_bytes', -bytes);
            END IF;
            RETURN NULL;
        END
        $$
        """,
        f"""
        CREATE FUNCTION qtq_tasks_updated() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            bytes DOUBLE PRECISION;
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM {_CHANGED}) THEN
                RETURN NULL;  -- a lease renewal, a result's details: no state changed
            END IF;
            INSERT INTO task_counts (status, shard, n)
            SELECT status, pg_backend_pid() % {SHARDS}, sum(delta) FROM (
                SELECT o.status, -1 AS delta FROM {_CHANGED}
                UNION ALL
                SELECT n.status, 1 AS delta FROM {_CHANGED}
            ) AS moves
            GROUP BY status
            ON CONFLICT (status, shard) DO UPDATE SET n = task_counts.n + excluded.n;
            INSERT INTO counters (name, shard, value)
            SELECT 'finished_' || n.status, pg_backend_pid() % {SHARDS}, count(*)
            FROM {_CHANGED} AND n.status IN {_FINAL}
            GROUP BY n.status
            ON CONFLICT (name, shard) DO UPDATE SET value = counters.value + excluded.value;
            PERFORM qtq_observe_all(
                'queue_wait', ARRAY(SELECT n.started_at - n.created_at FROM {_CHANGED} AND n.status = 'pending')
            );
            PERFORM qtq_observe_all(
                'run_time',
                ARRAY(SELECT n.finished_at - n.started_at FROM {_CHANGED}
                      AND o.status = 'pending' AND n.status IN {_FINAL} AND n.started_at IS NOT NULL)
            );
            SELECT coalesce(sum(n.circuit_bytes), 0) INTO bytes
            FROM {_CHANGED} AND o.status IN ('submitted', 'pending') AND n.status IN {_FINAL};
            IF bytes <> 0 THEN
                PERFORM qtq_bump('queued_bytes', -bytes);
            END IF;
            IF EXISTS (SELECT 1 FROM {_CHANGED} AND n.status = 'submitted') THEN
                PERFORM pg_notify('{CHANNEL}', '');
            END IF;
            RETURN NULL;
        END
        $$
        """,
        "CREATE TRIGGER tasks_inserted AFTER INSERT ON tasks REFERENCING NEW TABLE AS new_rows"
        " FOR EACH STATEMENT EXECUTE FUNCTION qtq_tasks_inserted()",
        "CREATE TRIGGER tasks_deleted AFTER DELETE ON tasks REFERENCING OLD TABLE AS old_rows"
        " FOR EACH STATEMENT EXECUTE FUNCTION qtq_tasks_deleted()",
        "CREATE TRIGGER tasks_updated AFTER UPDATE ON tasks REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
        " FOR EACH STATEMENT EXECUTE FUNCTION qtq_tasks_updated()",
    ]
)

# Zero-count rows for every bucket, so a fresh database already shows the full histograms.
SEED_BUCKETS = """
INSERT INTO histogram_buckets (metric, le, shard, count)
SELECT %(metric)s, bound, 0, 0 FROM unnest(%(bounds)s::float8[] || 'Infinity'::float8) AS bound
ON CONFLICT DO NOTHING
"""

FINISHED_AMONG = (
    f"SELECT {TASK_COLUMNS} FROM tasks WHERE status IN ('completed', 'failed', 'cancelled') AND id = ANY(%(ids)s)"
)

# For the tests and operators: how PostgreSQL finds the rows CLAIM takes.
EXPLAIN_CLAIM = (
    "EXPLAIN (FORMAT JSON) SELECT seq FROM tasks WHERE status = 'submitted'"
    " ORDER BY turn, seq LIMIT 32 FOR UPDATE SKIP LOCKED"
)

# A quoted literal (kept, but for its `%`), a `::` cast (kept), a `:name` placeholder, or a `%`.
_TOKEN = re.compile(r"'(?:[^']|'')*'|::|:([A-Za-z_]\w*)|%")


def to_pyformat(text: str) -> str:
    """SQL written with `:name` placeholders in psycopg's style: `%(name)s`, and every `%` doubled.

    psycopg reads `%` as the start of a placeholder whenever parameters are passed, and only then:
    so the store passes a mapping with every statement, an empty one when nothing is bound.
    """

    def convert(token: re.Match[str]) -> str:
        if token[1] is not None:
            return f"%({token[1]})s"
        return token[0].replace("%", "%%")

    return _TOKEN.sub(convert, text)


def in_pyformat(queries: Q) -> Q:
    """Convert, in place, every statement the class inherits from Queries (its own are in psycopg's style)."""
    return with_clock(queries, to_pyformat)


# The server's clock in epoch seconds. statement_timestamp() is one reading per statement, and
# stable, so a comparison with it can use an index (clock_timestamp() changes row by row: it could not).
NOW = "extract(epoch FROM statement_timestamp())::float8"


@in_pyformat
class PostgresQueries(Queries):
    """The shared statements in psycopg's placeholders, and PostgreSQL's own clock, claim, status read
    and histogram read."""

    NOW = NOW

    positional = "%s"

    # The first :limit submitted tasks in turn order that no other transaction holds, claimed in
    # one statement: SKIP LOCKED lets any number of workers claim at once without waiting on each other.
    CLAIM = f"""
    WITH next AS (
        SELECT seq FROM tasks WHERE status = 'submitted'
        ORDER BY turn, seq LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    )
    UPDATE tasks SET status = 'pending', attempts = tasks.attempts + 1, worker_id = %(worker)s,
        started_at = coalesce(%(now)s, {NOW}), lease_expires_at = coalesce(%(now)s, {NOW}) + %(lease_seconds)s
    FROM next WHERE tasks.seq = next.seq
    RETURNING tasks.seq, tasks.id, tasks.circuit, tasks.shots, tasks.seed, tasks.attempts, tasks.created_at,
        tasks.options, tasks.owner, tasks.turn
    """

    # The key's row, held until the submission commits: concurrent submissions of one key count
    # its queued tasks one after the other, so none can pass its max_queued by racing.
    LOCK_OWNER = "SELECT 1 FROM api_keys WHERE name = %(owner)s FOR UPDATE"

    # FOR UPDATE: a cancel that found the task finished reports the state it really had.
    SELECT_STATUS = "SELECT status FROM tasks WHERE id = %(id)s FOR UPDATE"

    # The +Inf bucket is stored as Infinity in every shard; the records want NULL for it, sorted last.
    HISTOGRAMS = """
    SELECT metric, CASE WHEN le = 'Infinity' THEN NULL ELSE le END AS le, sum(count) AS count
    FROM histogram_buckets GROUP BY metric, le ORDER BY metric, le
    """
