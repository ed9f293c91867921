"""The SQL only the SQLite backend runs: its schema, and the statements its dialect writes its own way.

The rest is written once for both backends in shared.queries. Parameters are always bound.
"""

from shared.queries import TASK_COLUMNS, Queries, with_clock

# Each migration brings the schema from version N-1 to N; `PRAGMA user_version` records N.
MIGRATIONS: list[list[str]] = [
    # 1: tasks, which are both the store and the queue.
    [
        """
        CREATE TABLE tasks (
            seq              INTEGER PRIMARY KEY AUTOINCREMENT,
            id               TEXT    NOT NULL UNIQUE,
            status           TEXT    NOT NULL,
            circuit          TEXT    NOT NULL,
            shots            INTEGER NOT NULL,
            seed             INTEGER,
            created_at       REAL    NOT NULL,
            started_at       REAL,
            finished_at      REAL,
            result           TEXT,
            error            TEXT,
            attempts         INTEGER NOT NULL DEFAULT 0,
            worker_id        TEXT,
            lease_expires_at REAL
        )
        """,
        "CREATE INDEX tasks_submitted_by_seq ON tasks (seq) WHERE status = 'submitted'",
        "CREATE INDEX tasks_pending_by_lease ON tasks (lease_expires_at) WHERE status = 'pending'",
    ],
    # 2: circuit facts, cancellation, worker presence, and counters kept by triggers so that
    # /health and /metrics read O(1) rows and agree across every API process and host.
    [
        "ALTER TABLE tasks ADD COLUMN num_qubits INTEGER",
        "ALTER TABLE tasks ADD COLUMN depth INTEGER",
        "ALTER TABLE tasks ADD COLUMN duration_ms REAL",
        "ALTER TABLE tasks ADD COLUMN diagram TEXT",
        "ALTER TABLE tasks ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX tasks_by_status_seq ON tasks (status, seq)",
        """
        CREATE TABLE workers (
            id             TEXT PRIMARY KEY,
            host           TEXT NOT NULL,
            pid            INTEGER NOT NULL,
            started_at     REAL NOT NULL,
            last_heartbeat REAL NOT NULL,
            task_id        TEXT
        )
        """,
        "CREATE TABLE task_counts (status TEXT PRIMARY KEY, n INTEGER NOT NULL)",
        "INSERT INTO task_counts (status, n) SELECT status, count(*) FROM tasks GROUP BY status",
        "CREATE TABLE counters (name TEXT PRIMARY KEY, value REAL NOT NULL)",
        "INSERT INTO counters (name, value) SELECT 'submitted_total', count(*) FROM tasks",
        """
        INSERT INTO counters (name, value)
        SELECT 'finished_' || status, count(*) FROM tasks WHERE status IN ('completed', 'failed') GROUP BY status
        """,
        """
        CREATE TABLE histogram_buckets (
            metric TEXT NOT NULL,
            le     REAL,
            count  INTEGER NOT NULL DEFAULT 0,
            UNIQUE (metric, le)
        )
        """,
        # Every status change keeps task_counts right, whoever makes it.
        """
        CREATE TRIGGER tasks_count_insert AFTER INSERT ON tasks BEGIN
            INSERT INTO task_counts (status, n) VALUES (NEW.status, 1)
                ON CONFLICT (status) DO UPDATE SET n = n + 1;
            INSERT INTO counters (name, value) VALUES ('submitted_total', 1)
                ON CONFLICT (name) DO UPDATE SET value = value + 1;
        END
        """,
        """
        CREATE TRIGGER tasks_count_delete AFTER DELETE ON tasks BEGIN
            UPDATE task_counts SET n = n - 1 WHERE status = OLD.status;
        END
        """,
        """
        CREATE TRIGGER tasks_count_status AFTER UPDATE OF status ON tasks
        WHEN OLD.status <> NEW.status BEGIN
            UPDATE task_counts SET n = n - 1 WHERE status = OLD.status;
            INSERT INTO task_counts (status, n) VALUES (NEW.status, 1)
                ON CONFLICT (status) DO UPDATE SET n = n + 1;
        END
        """,
        """
        CREATE TRIGGER tasks_observe_claim AFTER UPDATE OF status ON tasks
        WHEN NEW.status = 'pending' AND OLD.status <> 'pending' BEGIN
            UPDATE histogram_buckets SET count = count + 1
                WHERE metric = 'queue_wait' AND (le IS NULL OR le >= NEW.started_at - NEW.created_at);
            INSERT INTO counters (name, value) VALUES ('queue_wait_sum', NEW.started_at - NEW.created_at)
                ON CONFLICT (name) DO UPDATE SET value = value + excluded.value;
        END
        """,
        """
        CREATE TRIGGER tasks_observe_finish AFTER UPDATE OF status ON tasks
        WHEN NEW.status IN ('completed', 'failed', 'cancelled') AND OLD.status <> NEW.status BEGIN
            INSERT INTO counters (name, value) VALUES ('finished_' || NEW.status, 1)
                ON CONFLICT (name) DO UPDATE SET value = value + 1;
            UPDATE histogram_buckets SET count = count + 1
                WHERE OLD.status = 'pending' AND NEW.started_at IS NOT NULL AND metric = 'run_time'
                  AND (le IS NULL OR le >= NEW.finished_at - NEW.started_at);
            INSERT INTO counters (name, value)
                SELECT 'run_time_sum', NEW.finished_at - NEW.started_at
                WHERE OLD.status = 'pending' AND NEW.started_at IS NOT NULL
                ON CONFLICT (name) DO UPDATE SET value = value + excluded.value;
        END
        """,
    ],
]

MIGRATIONS.append(
    # 3: retention pruning finds old finished tasks by an index.
    ["CREATE INDEX tasks_finished_at ON tasks (finished_at) WHERE finished_at IS NOT NULL"]
)
MIGRATIONS.append(
    # 4: where a task's time went, besides the simulation itself.
    ["ALTER TABLE tasks ADD COLUMN parse_ms REAL", "ALTER TABLE tasks ADD COLUMN transpile_ms REAL"]
)

MIGRATIONS.append(
    # 5: the bytes of circuit text waiting or running, kept by triggers for MAX_QUEUED_BYTES.
    [
        "ALTER TABLE tasks ADD COLUMN circuit_bytes INTEGER NOT NULL DEFAULT 0",
        "UPDATE tasks SET circuit_bytes = length(CAST(circuit AS BLOB)) WHERE status IN ('submitted', 'pending')",
        """
        INSERT INTO counters (name, value)
        SELECT 'queued_bytes', coalesce(sum(circuit_bytes), 0) FROM tasks WHERE status IN ('submitted', 'pending')
        """,
        """
        CREATE TRIGGER tasks_queued_bytes_insert AFTER INSERT ON tasks BEGIN
            UPDATE counters SET value = value + NEW.circuit_bytes WHERE name = 'queued_bytes';
        END
        """,
        """
        CREATE TRIGGER tasks_queued_bytes_finish AFTER UPDATE OF status ON tasks
        WHEN OLD.status IN ('submitted', 'pending') AND NEW.status IN ('completed', 'failed', 'cancelled') BEGIN
            UPDATE counters SET value = value - NEW.circuit_bytes WHERE name = 'queued_bytes';
        END
        """,
        """
        CREATE TRIGGER tasks_queued_bytes_delete AFTER DELETE ON tasks
        WHEN OLD.status IN ('submitted', 'pending') BEGIN
            UPDATE counters SET value = value - OLD.circuit_bytes WHERE name = 'queued_bytes';
        END
        """,
    ]
)

MIGRATIONS.append(
    # 6: what a task asked for beyond circuit, shots and seed (sweep parameters, observables,
    # memory, method, noise), and what it produced beyond counts; both JSON.
    ["ALTER TABLE tasks ADD COLUMN options TEXT", "ALTER TABLE tasks ADD COLUMN output TEXT"]
)

MIGRATIONS.append(
    # 7: Idempotency-Key: the first request's task, kept IDEMPOTENCY_TTL_HOURS.
    [
        """
        CREATE TABLE idempotency_keys (
            key          TEXT PRIMARY KEY,
            request_hash TEXT NOT NULL,
            task_id      TEXT NOT NULL,
            created_at   REAL NOT NULL
        )
        """,
        "CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at)",
    ]
)

MIGRATIONS.append(
    # 8: tags: shown from the task's JSON, filtered through task_tags (key, value, seq) so that a
    # tag filter walks an index in seq order.
    [
        "ALTER TABLE tasks ADD COLUMN tags TEXT",
        """
        CREATE TABLE task_tags (
            key      TEXT    NOT NULL,
            value    TEXT    NOT NULL,
            task_seq INTEGER NOT NULL,
            PRIMARY KEY (key, value, task_seq)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX task_tags_by_task ON task_tags (task_seq)",
        """
        CREATE TRIGGER tasks_tags_delete AFTER DELETE ON tasks BEGIN
            DELETE FROM task_tags WHERE task_seq = OLD.seq;
        END
        """,
    ]
)

MIGRATIONS.append(
    # 9: batches: many tasks submitted as one unit, in request order.
    [
        """
        CREATE TABLE batches (
            seq        INTEGER PRIMARY KEY AUTOINCREMENT,
            id         TEXT    NOT NULL UNIQUE,
            created_at REAL    NOT NULL,
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
    # 10: API keys, task owners, fair-share turns and usage.
    [
        """
        CREATE TABLE api_keys (
            id           TEXT    PRIMARY KEY,
            name         TEXT    NOT NULL UNIQUE,
            token_hash   TEXT    NOT NULL UNIQUE,
            admin        BOOLEAN NOT NULL DEFAULT FALSE,
            max_queued   INTEGER,
            created_at   REAL    NOT NULL,
            last_used_at REAL,
            revoked_at   REAL
        )
        """,
        """
        CREATE TABLE key_usage (
            owner              TEXT    NOT NULL,
            day                INTEGER NOT NULL,
            shard              INTEGER NOT NULL,
            submitted          INTEGER NOT NULL,
            shots              INTEGER NOT NULL,
            simulation_seconds REAL    NOT NULL,
            PRIMARY KEY (owner, day, shard)
        )
        """,
        "ALTER TABLE tasks ADD COLUMN owner TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE tasks ADD COLUMN turn BIGINT NOT NULL DEFAULT 0",
        "ALTER TABLE batches ADD COLUMN owner TEXT NOT NULL DEFAULT ''",
        # Claims walk the waiting tasks in turn order (the old order by seq alone is gone). Whole
        # indexes led by status, not partial ones: SQLite's planner prefers tasks_by_status_seq
        # over a partial index and then sorts every waiting task.
        "DROP INDEX tasks_submitted_by_seq",
        "CREATE INDEX tasks_by_status_turn ON tasks (status, turn, seq)",
        # An owner's last turn and its count of waiting and running tasks (max_queued).
        "CREATE INDEX tasks_by_owner_status ON tasks (owner, status, turn)",
        # A key's own list, newest first.
        "CREATE INDEX tasks_by_owner_seq ON tasks (owner, seq)",
    ]
)

SEED_BUCKETS = "INSERT OR IGNORE INTO histogram_buckets (metric, le, count) VALUES (?, ?, 0)"
SEED_INF_BUCKET = """
INSERT INTO histogram_buckets (metric, le, count)
SELECT ?, NULL, 0 WHERE NOT EXISTS (SELECT 1 FROM histogram_buckets WHERE metric = ? AND le IS NULL)
"""

# One `?` per id is filled in (marks only: the ids themselves are bound).
FINISHED_AMONG = (
    f"SELECT {TASK_COLUMNS} FROM tasks WHERE status IN ('completed', 'failed', 'cancelled') AND id IN ({{marks}})"
)

# For the tests and operators: how SQLite finds the rows CLAIM takes.
EXPLAIN_CLAIM = "EXPLAIN QUERY PLAN SELECT seq FROM tasks WHERE status = 'submitted' ORDER BY turn, seq LIMIT 32"


# The machine's clock, the one every process of an SQLite queue shares: Python's time.time(), which
# SqliteStore registers as this function on each connection (SQLite's own 'now' keeps only
# milliseconds, and would put a claim before its submission).
CLOCK_FUNCTION = "qtq_now"
NOW = f"{CLOCK_FUNCTION}()"


@with_clock
class SqliteQueries(Queries):
    """The shared statements as written, and SQLite's own clock, claim, status read and histogram read."""

    NOW = NOW

    # The first :limit submitted tasks in turn order; atomic only inside BEGIN IMMEDIATE
    # (SqliteStore._claim_context).
    CLAIM = f"""
    UPDATE tasks
    SET status = 'pending', attempts = attempts + 1, worker_id = :worker,
        started_at = coalesce(:now, {NOW}), lease_expires_at = coalesce(:now, {NOW}) + :lease_seconds
    WHERE seq IN (SELECT seq FROM tasks WHERE status = 'submitted' ORDER BY turn, seq LIMIT :limit)
    RETURNING seq, id, circuit, shots, seed, attempts, created_at, options, owner, turn
    """

    # BEGIN IMMEDIATE already keeps every other writer out while a submission counts.
    LOCK_OWNER = "SELECT 1 WHERE :owner IS NOT NULL"

    # No FOR UPDATE in SQLite: the cancel's BEGIN IMMEDIATE already keeps other writers out.
    SELECT_STATUS = "SELECT status FROM tasks WHERE id = :id"

    # The +Inf bucket's bound is NULL, sorted last.
    HISTOGRAMS = "SELECT metric, le, count FROM histogram_buckets ORDER BY metric, le IS NULL, le"
