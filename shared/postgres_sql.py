"""Every SQL statement of the PostgreSQL backend, as named constants. Parameters are always bound."""

from shared.metrics_buckets import QUEUE_WAIT_BUCKETS, RUN_TIME_BUCKETS

CHANNEL = "qtq_tasks"
LISTEN = f"LISTEN {CHANNEL}"
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

# Inserts nothing when the queue's circuit bytes would pass the limit (then no row comes back).
INSERT_TASK = """
INSERT INTO tasks (id, status, circuit, shots, seed, created_at, circuit_bytes)
SELECT %(id)s, 'submitted', %(circuit)s, %(shots)s, %(seed)s, %(now)s, %(bytes)s
WHERE (SELECT coalesce(sum(value), 0) FROM counters WHERE name = 'queued_bytes') + %(bytes)s <= %(max_bytes)s
RETURNING seq
"""

QUEUED_BYTES = "SELECT coalesce(sum(value), 0) AS value FROM counters WHERE name = 'queued_bytes'"

TASK_COLUMNS = """
id, status, shots, seed, created_at, started_at, finished_at, result, error, attempts, worker_id,
lease_expires_at, num_qubits, depth, duration_ms, parse_ms, transpile_ms, cancel_requested
"""

SELECT_TASK = f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = %(id)s"

SELECT_CIRCUIT = "SELECT circuit, diagram FROM tasks WHERE id = %(id)s"

SUMMARY_COLUMNS = "seq, id, status, shots, created_at, started_at, finished_at, num_qubits"

LIST_TASKS = f"""
SELECT {SUMMARY_COLUMNS} FROM tasks WHERE seq < %(before)s ORDER BY seq DESC LIMIT %(limit)s
"""

LIST_TASKS_BY_STATUS = f"""
SELECT {SUMMARY_COLUMNS} FROM tasks
WHERE status = %(status)s AND seq < %(before)s ORDER BY seq DESC LIMIT %(limit)s
"""

HAS_WORK = "SELECT EXISTS (SELECT 1 FROM tasks WHERE status = 'submitted') AS found"

FINISHED_VERSION = "SELECT coalesce(sum(value), 0) AS version FROM counters WHERE name LIKE 'finished_%%'"

FINISHED_AMONG = "SELECT id FROM tasks WHERE status IN ('completed', 'failed', 'cancelled') AND id = ANY(%(ids)s)"

CANCEL_EXPIRED = """
UPDATE tasks SET status = 'cancelled', finished_at = %(now)s, lease_expires_at = NULL
WHERE status = 'pending' AND lease_expires_at < %(now)s AND cancel_requested
RETURNING id, attempts
"""

FAIL_EXHAUSTED = """
UPDATE tasks
SET status = 'failed', finished_at = %(now)s, lease_expires_at = NULL,
    error = 'WorkerLost: the task was interrupted ' || attempts
            || ' times (its worker stopped renewing the lease); giving up after MAX_ATTEMPTS='
            || %(max_attempts)s
WHERE status = 'pending' AND lease_expires_at < %(now)s AND attempts >= %(max_attempts)s
RETURNING id, attempts
"""

REQUEUE_EXPIRED = """
UPDATE tasks SET status = 'submitted', worker_id = NULL, started_at = NULL, lease_expires_at = NULL
WHERE status = 'pending' AND lease_expires_at < %(now)s
RETURNING id, attempts
"""

# The oldest submitted task no other transaction holds, claimed in one statement: SKIP LOCKED
# lets any number of workers claim at once without waiting on each other.
CLAIM_NEXT = """
WITH next AS (
    SELECT seq FROM tasks WHERE status = 'submitted'
    ORDER BY seq LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE tasks SET status = 'pending', attempts = tasks.attempts + 1, worker_id = %(worker)s,
    started_at = %(now)s, lease_expires_at = %(expires)s
FROM next WHERE tasks.seq = next.seq
RETURNING tasks.id, tasks.circuit, tasks.shots, tasks.seed, tasks.attempts, tasks.created_at
"""

# For the tests and operators: how PostgreSQL finds the row CLAIM_NEXT takes.
EXPLAIN_CLAIM = (
    "EXPLAIN (FORMAT JSON) SELECT seq FROM tasks WHERE status = 'submitted' ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED"
)

OWNED = "id = %(id)s AND worker_id = %(worker)s AND attempts = %(attempt)s AND status = 'pending'"

RENEW_LEASE = f"UPDATE tasks SET lease_expires_at = %(expires)s WHERE {OWNED} RETURNING cancel_requested"

DETAILS = (
    "num_qubits = %(num_qubits)s, depth = %(depth)s, duration_ms = %(duration_ms)s, parse_ms = %(parse_ms)s,"
    " transpile_ms = %(transpile_ms)s, diagram = %(diagram)s"
)

COMPLETE = f"""
UPDATE tasks
SET status = 'completed', result = %(result)s, finished_at = %(now)s, lease_expires_at = NULL, {DETAILS}
WHERE {OWNED}
"""

FAIL = f"""
UPDATE tasks
SET status = 'failed', error = %(error)s, finished_at = %(now)s, lease_expires_at = NULL, {DETAILS}
WHERE {OWNED}
"""

MARK_CANCELLED = f"""
UPDATE tasks SET status = 'cancelled', finished_at = %(now)s, lease_expires_at = NULL
WHERE {OWNED}
"""

RELEASE = f"""
UPDATE tasks
SET status = 'submitted', attempts = attempts - 1, worker_id = NULL, started_at = NULL, lease_expires_at = NULL
WHERE {OWNED}
"""

CANCEL_SUBMITTED = """
UPDATE tasks SET status = 'cancelled', finished_at = %(now)s
WHERE id = %(id)s AND status = 'submitted'
RETURNING status
"""

REQUEST_CANCEL = """
UPDATE tasks SET cancel_requested = TRUE
WHERE id = %(id)s AND status = 'pending'
RETURNING status
"""

# FOR UPDATE: a cancel that found the task finished reports the state it really had.
SELECT_STATUS = "SELECT status FROM tasks WHERE id = %(id)s FOR UPDATE"

BEAT_WORKER = """
INSERT INTO workers (id, host, pid, started_at, last_heartbeat, task_id)
VALUES (%(id)s, %(host)s, %(pid)s, %(now)s, %(now)s, %(task_id)s)
ON CONFLICT (id) DO UPDATE SET last_heartbeat = excluded.last_heartbeat, task_id = excluded.task_id
"""

REMOVE_WORKER = "DELETE FROM workers WHERE id = %(id)s"

FORGET_DEAD_WORKERS = "DELETE FROM workers WHERE last_heartbeat < %(before)s"

LIVE_WORKERS = """
SELECT id, host, pid, started_at, last_heartbeat, task_id FROM workers
WHERE last_heartbeat >= %(since)s ORDER BY started_at
"""

TASK_COUNTS = "SELECT status, sum(n) AS n FROM task_counts GROUP BY status"

COUNTERS = "SELECT name, sum(value) AS value FROM counters GROUP BY name"

HISTOGRAMS = """
SELECT metric, CASE WHEN le = 'Infinity' THEN NULL ELSE le END AS le, sum(count) AS count
FROM histogram_buckets GROUP BY metric, le ORDER BY metric, le
"""

# Zero-count rows for every bucket, so a fresh database already shows the full histograms.
SEED_BUCKETS = """
INSERT INTO histogram_buckets (metric, le, shard, count)
SELECT %(metric)s, bound, 0, 0 FROM unnest(%(bounds)s::float8[] || 'Infinity'::float8) AS bound
ON CONFLICT DO NOTHING
"""

PRUNE_FINISHED = """
DELETE FROM tasks WHERE seq IN (
    SELECT seq FROM tasks
    WHERE finished_at < %(before)s AND status IN ('completed', 'failed', 'cancelled')
    LIMIT %(limit)s
)
"""
