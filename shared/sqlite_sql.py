"""Every SQL statement of the SQLite backend, as named constants. Parameters are always bound."""

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

SEED_BUCKETS = "INSERT OR IGNORE INTO histogram_buckets (metric, le, count) VALUES (?, ?, 0)"
SEED_INF_BUCKET = """
INSERT INTO histogram_buckets (metric, le, count)
SELECT ?, NULL, 0 WHERE NOT EXISTS (SELECT 1 FROM histogram_buckets WHERE metric = ? AND le IS NULL)
"""

# Inserts nothing when the queue's circuit bytes would pass the limit (then no row comes back).
INSERT_TASK = """
INSERT INTO tasks (id, status, circuit, shots, seed, created_at, circuit_bytes)
SELECT :id, 'submitted', :circuit, :shots, :seed, :now, :bytes
WHERE (SELECT coalesce(sum(value), 0) FROM counters WHERE name = 'queued_bytes') + :bytes <= :max_bytes
RETURNING seq
"""

QUEUED_BYTES = "SELECT coalesce(sum(value), 0) AS value FROM counters WHERE name = 'queued_bytes'"

TASK_COLUMNS = """
id, status, shots, seed, created_at, started_at, finished_at, result, error, attempts, worker_id,
lease_expires_at, num_qubits, depth, duration_ms, parse_ms, transpile_ms, cancel_requested
"""

SELECT_TASK = f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = :id"

SELECT_CIRCUIT = "SELECT circuit, diagram FROM tasks WHERE id = :id"

SUMMARY_COLUMNS = "seq, id, status, shots, created_at, started_at, finished_at, num_qubits"

LIST_TASKS = f"""
SELECT {SUMMARY_COLUMNS} FROM tasks
WHERE seq < :before
ORDER BY seq DESC LIMIT :limit
"""

LIST_TASKS_BY_STATUS = f"""
SELECT {SUMMARY_COLUMNS} FROM tasks
WHERE status = :status AND seq < :before
ORDER BY seq DESC LIMIT :limit
"""

HAS_WORK = "SELECT EXISTS (SELECT 1 FROM tasks WHERE status = 'submitted') AS found"

# Moves whenever a task reaches a final state: long-polls re-check their tasks only then.
FINISHED_VERSION = "SELECT coalesce(sum(value), 0) AS version FROM counters WHERE name LIKE 'finished_%'"

FINISHED_AMONG = "SELECT id FROM tasks WHERE status IN ('completed', 'failed', 'cancelled') AND id IN ({marks})"

# A lease that expired means its worker died or hung: a task someone asked to cancel is
# cancelled; past the attempt limit the task fails; otherwise it goes back to the queue at its
# old place (seq is unchanged).
CANCEL_EXPIRED = """
UPDATE tasks
SET status = 'cancelled', finished_at = :now, lease_expires_at = NULL
WHERE status = 'pending' AND lease_expires_at < :now AND cancel_requested = 1
RETURNING id, attempts
"""

FAIL_EXHAUSTED = """
UPDATE tasks
SET status = 'failed', finished_at = :now, lease_expires_at = NULL,
    error = 'WorkerLost: the task was interrupted ' || attempts
            || ' times (its worker stopped renewing the lease); giving up after MAX_ATTEMPTS='
            || :max_attempts
WHERE status = 'pending' AND lease_expires_at < :now AND attempts >= :max_attempts
RETURNING id, attempts
"""

REQUEUE_EXPIRED = """
UPDATE tasks
SET status = 'submitted', worker_id = NULL, started_at = NULL, lease_expires_at = NULL
WHERE status = 'pending' AND lease_expires_at < :now
RETURNING id, attempts
"""

CLAIM_NEXT = """
UPDATE tasks
SET status = 'pending', attempts = attempts + 1, worker_id = :worker,
    started_at = :now, lease_expires_at = :expires
WHERE seq = (SELECT seq FROM tasks WHERE status = 'submitted' ORDER BY seq LIMIT 1)
RETURNING id, circuit, shots, seed, attempts, created_at
"""

# Every write by a worker names the attempt it holds: a worker whose lease was taken over
# matches no row and so cannot overwrite the new owner's state.
OWNED = "id = :id AND worker_id = :worker AND attempts = :attempt AND status = 'pending'"

RENEW_LEASE = f"UPDATE tasks SET lease_expires_at = :expires WHERE {OWNED} RETURNING cancel_requested"

DETAILS = (
    "num_qubits = :num_qubits, depth = :depth, duration_ms = :duration_ms, parse_ms = :parse_ms,"
    " transpile_ms = :transpile_ms, diagram = :diagram"
)

COMPLETE = f"""
UPDATE tasks
SET status = 'completed', result = :result, finished_at = :now, lease_expires_at = NULL, {DETAILS}
WHERE {OWNED}
"""

FAIL = f"""
UPDATE tasks
SET status = 'failed', error = :error, finished_at = :now, lease_expires_at = NULL, {DETAILS}
WHERE {OWNED}
"""

MARK_CANCELLED = f"""
UPDATE tasks
SET status = 'cancelled', finished_at = :now, lease_expires_at = NULL
WHERE {OWNED}
"""

RELEASE = f"""
UPDATE tasks
SET status = 'submitted', attempts = attempts - 1, worker_id = NULL,
    started_at = NULL, lease_expires_at = NULL
WHERE {OWNED}
"""

CANCEL_SUBMITTED = """
UPDATE tasks SET status = 'cancelled', finished_at = :now
WHERE id = :id AND status = 'submitted'
RETURNING status
"""

REQUEST_CANCEL = """
UPDATE tasks SET cancel_requested = 1
WHERE id = :id AND status = 'pending'
RETURNING status
"""

SELECT_STATUS = "SELECT status FROM tasks WHERE id = :id"

BEAT_WORKER = """
INSERT INTO workers (id, host, pid, started_at, last_heartbeat, task_id)
VALUES (:id, :host, :pid, :now, :now, :task_id)
ON CONFLICT (id) DO UPDATE SET last_heartbeat = excluded.last_heartbeat, task_id = excluded.task_id
"""

REMOVE_WORKER = "DELETE FROM workers WHERE id = :id"

FORGET_DEAD_WORKERS = "DELETE FROM workers WHERE last_heartbeat < :before"

LIVE_WORKERS = """
SELECT id, host, pid, started_at, last_heartbeat, task_id FROM workers
WHERE last_heartbeat >= :since ORDER BY started_at
"""

TASK_COUNTS = "SELECT status, n FROM task_counts"

COUNTERS = "SELECT name, value FROM counters"

HISTOGRAMS = "SELECT metric, le, count FROM histogram_buckets ORDER BY metric, le IS NULL, le"

PRUNE_FINISHED = """
DELETE FROM tasks WHERE seq IN (
    SELECT seq FROM tasks
    WHERE finished_at < :before AND status IN ('completed', 'failed', 'cancelled')
    LIMIT :limit
)
"""

# For the tests and operators: how SQLite finds the row CLAIM_NEXT takes.
EXPLAIN_CLAIM = "EXPLAIN QUERY PLAN SELECT seq FROM tasks WHERE status = 'submitted' ORDER BY seq LIMIT 1"
