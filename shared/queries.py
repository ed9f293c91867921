"""The SQL both backends run as written: one text per statement, with `:name` placeholders, always bound.

`Queries` holds every statement the store's shared methods run (shared.sql_store). A backend's
subclass writes the few its dialect needs otherwise (shared.sqlite_sql, shared.postgres_sql);
PostgreSQL's converts the ones it inherits to psycopg's `%(name)s` once, at import. `:name` is the
written style because it is plain SQL: `%` stays a `%` here, and the conversion doubles it.

Lease and heartbeat times are the database's: AT_NOW reads its clock, so workers and APIs on many
hosts agree on when a lease runs out whatever their own clocks say (a host's clock off by two
minutes would otherwise have live workers' tasks run twice, or dead workers' tasks wait).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, TypeVar

# A whole task, as rows.to_task reads it.
TASK_COLUMNS = """
id, status, shots, seed, created_at, started_at, finished_at, result, error, attempts, worker_id,
lease_expires_at, num_qubits, depth, duration_ms, parse_ms, transpile_ms, cancel_requested, options, output, tags,
batch_id, owner
"""

_KEY_COLUMNS = "id, name, admin, max_queued, created_at, last_used_at, revoked_at"

_SUMMARY_COLUMNS = "seq, id, status, shots, created_at, started_at, finished_at, num_qubits, tags, batch_id, owner"

# Fair share: a new task's turn is one past its owner's last waiting task, but never before the
# first turn still waiting. Workers claim in turn order, so an owner with one task waits behind at
# most one task of each other owner, however many those have queued; within an owner, oldest first.
_TURN = """
CASE WHEN turns.mine > turns.lowest THEN turns.mine ELSE turns.lowest END
"""
_TURNS = """
(SELECT coalesce((SELECT max(turn) + 1 FROM tasks WHERE owner = :owner AND status = 'submitted'), 0) AS mine,
        coalesce((SELECT min(turn) FROM tasks WHERE status = 'submitted'), 0) AS lowest) AS turns
"""

# Every write by a worker names the attempt it holds: a worker whose lease was taken over
# matches no row and so cannot overwrite the new owner's state.
_OWNED = "id = :id AND worker_id = :worker AND attempts = :attempt AND status = 'pending'"

# The time a lease or heartbeat is stamped with or compared to: the caller's `:now` when it pins one
# (the contract tests do), else the database's clock, read once per statement. `{now}` becomes the
# dialect's NOW (see with_clock), an expression for the clock in epoch seconds.
AT_NOW = "coalesce(:now, {now})"

_DETAILS = (
    "num_qubits = :num_qubits, depth = :depth, duration_ms = :duration_ms, parse_ms = :parse_ms,"
    " transpile_ms = :transpile_ms, diagram = :diagram"
)


class Queries:
    """The statements of the store's shared methods; a class only as a namespace a dialect can extend."""

    # Written by each dialect: its clock, how to claim without a race, whether a read can lock its
    # row, how the +Inf histogram bucket is stored, and how a submission keeps others of its owner
    # out while it counts the owner's queued tasks.
    NOW: ClassVar[str]
    CLAIM: ClassVar[str]
    SELECT_STATUS: ClassVar[str]
    HISTOGRAMS: ClassVar[str]
    LOCK_OWNER: ClassVar[str]

    # Inserts nothing when the queue's circuit bytes would pass the limit (then no row comes back).
    INSERT_TASK = f"""
    INSERT INTO tasks (id, status, circuit, shots, seed, created_at, circuit_bytes, options, tags, owner, turn)
    SELECT :id, 'submitted', :circuit, :shots, :seed, :now, :bytes, :options, :tags, :owner, {_TURN}
    FROM {_TURNS}
    WHERE (SELECT coalesce(sum(value), 0) FROM counters WHERE name = 'queued_bytes') + :bytes <= :max_bytes
    RETURNING seq
    """

    # The first turn of a batch's tasks (they take consecutive turns from there).
    FIRST_TURN = f"SELECT {_TURN} AS turn FROM {_TURNS}"

    # How many of an owner's tasks wait or run, for its max_queued (tasks_waiting_by_owner).
    OWNER_QUEUED = "SELECT count(*) AS n FROM tasks WHERE owner = :owner AND status IN ('submitted', 'pending')"

    # What an owner used, per day (UTC days since the epoch); PostgreSQL spreads each over shards,
    # so that concurrent submissions of one key do not queue on one row.
    COUNT_SUBMITTED = """
    INSERT INTO key_usage (owner, day, shard, submitted, shots, simulation_seconds)
    VALUES (:owner, :day, :shard, :n, 0, 0)
    ON CONFLICT (owner, day, shard) DO UPDATE SET submitted = key_usage.submitted + excluded.submitted
    """

    COUNT_RUN = """
    INSERT INTO key_usage (owner, day, shard, submitted, shots, simulation_seconds)
    VALUES (:owner, :day, :shard, 0, :shots, :seconds)
    ON CONFLICT (owner, day, shard) DO UPDATE SET shots = key_usage.shots + excluded.shots,
        simulation_seconds = key_usage.simulation_seconds + excluded.simulation_seconds
    """

    # `{owner_filter}` is empty or OWNER_USAGE_FILTER.
    USAGE = """
    SELECT owner,
        sum(CASE WHEN day = :today THEN submitted ELSE 0 END) AS today_submitted,
        sum(CASE WHEN day = :today THEN shots ELSE 0 END) AS today_shots,
        sum(CASE WHEN day = :today THEN simulation_seconds ELSE 0 END) AS today_seconds,
        sum(submitted) AS total_submitted, sum(shots) AS total_shots, sum(simulation_seconds) AS total_seconds
    FROM key_usage {owner_filter} GROUP BY owner ORDER BY owner
    """

    OWNER_USAGE_FILTER = "WHERE owner = :owner"

    INSERT_KEY = """
    INSERT INTO api_keys (id, name, token_hash, admin, max_queued, created_at)
    VALUES (:id, :name, :token_hash, :admin, :max_queued, :now)
    ON CONFLICT (name) DO NOTHING
    RETURNING id
    """

    LIST_KEYS = f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at, name"

    REVOKE_KEY = "UPDATE api_keys SET revoked_at = :now WHERE name = :name AND revoked_at IS NULL RETURNING id"

    # One read per request: whether the service has keys at all (then every request needs one), and
    # the key the token's hash names. A revoked key stays a row, so revoking never reopens the service.
    FIND_KEY = f"""
    SELECT (SELECT count(*) FROM api_keys) AS keys, k.{_KEY_COLUMNS.replace(", ", ", k.")}
    FROM (SELECT 1 AS one) AS o LEFT JOIN api_keys k ON k.token_hash = :token_hash
    """

    # last_used_at is written at most once a minute per key, not on every request.
    TOUCH_KEY = """
    UPDATE api_keys SET last_used_at = :now WHERE id = :id AND (last_used_at IS NULL OR last_used_at < :stale)
    """

    # A key older than the TTL is forgotten first, so it may name a new request.
    EXPIRE_IDEMPOTENCY_KEY = "DELETE FROM idempotency_keys WHERE key = :key AND created_at < :before"

    # Inserts the key unless it is there already (then no row comes back). In PostgreSQL a second
    # transaction with the same key waits here until the first commits, then sees its row.
    CLAIM_IDEMPOTENCY_KEY = """
    INSERT INTO idempotency_keys (key, request_hash, task_id, created_at)
    VALUES (:key, :request_hash, :task_id, :now)
    ON CONFLICT (key) DO NOTHING
    RETURNING key
    """

    SELECT_IDEMPOTENCY_KEY = "SELECT request_hash, task_id FROM idempotency_keys WHERE key = :key"

    PRUNE_IDEMPOTENCY_KEYS = "DELETE FROM idempotency_keys WHERE created_at < :before"

    INSERT_TAG = "INSERT INTO task_tags (key, value, task_seq) VALUES (:key, :value, :seq)"

    # The dialect's positional parameter (see insert_batch_tasks).
    positional = "?"

    QUEUED_BYTES = "SELECT coalesce(sum(value), 0) AS value FROM counters WHERE name = 'queued_bytes'"

    SELECT_TASK = f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = :id"

    SELECT_CIRCUIT = "SELECT circuit, diagram, owner FROM tasks WHERE id = :id"

    # `{{filters}}` takes STATUS_FILTER and any TAG_FILTER_<n>, each bound, never formatted values.
    LIST_TASKS = f"""
    SELECT {_SUMMARY_COLUMNS} FROM tasks
    WHERE seq < :before {{filters}}
    ORDER BY seq DESC LIMIT :limit
    """

    STATUS_FILTER = "AND status = :status"

    BATCH_FILTER = "AND batch_id = :batch_id"

    OWNER_FILTER = "AND owner = :owner"

    INSERT_BATCH = "INSERT INTO batches (id, created_at, total, tags, owner) VALUES (:id, :now, :total, :tags, :owner)"

    SELECT_BATCH = "SELECT id, created_at, total, tags, owner FROM batches WHERE id = :id"

    BATCH_STATES = """
    SELECT status, count(*) AS n, max(finished_at) AS finished_at FROM tasks
    WHERE batch_id = :id GROUP BY status
    """

    BATCH_TASKS = f"""
    SELECT {TASK_COLUMNS}, batch_index FROM tasks
    WHERE batch_id = :id AND batch_index > :after
    ORDER BY batch_index LIMIT :limit
    """

    CANCEL_BATCH_SUBMITTED = """
    UPDATE tasks SET status = 'cancelled', finished_at = :now
    WHERE batch_id = :id AND status = 'submitted'
    """

    REQUEST_BATCH_CANCEL = """
    UPDATE tasks SET cancel_requested = TRUE
    WHERE batch_id = :id AND status = 'pending'
    """

    # How many tasks wait: the trigger-kept count (PostgreSQL spreads it over shards), no scan.
    QUEUE_DEPTH = "SELECT coalesce(sum(n), 0) AS n FROM task_counts WHERE status = 'submitted'"

    # Moves whenever a task reaches a final state: long-polls re-check their tasks only then.
    FINISHED_VERSION = "SELECT coalesce(sum(value), 0) AS version FROM counters WHERE name LIKE 'finished_%'"

    # A lease that expired means its worker died or hung: a task someone asked to cancel is
    # cancelled; past the attempt limit the task fails; otherwise it goes back to the queue at its
    # old place (seq is unchanged).
    CANCEL_EXPIRED = f"""
    UPDATE tasks
    SET status = 'cancelled', finished_at = {AT_NOW}, lease_expires_at = NULL
    WHERE status = 'pending' AND lease_expires_at < {AT_NOW} AND cancel_requested
    RETURNING id, attempts
    """

    FAIL_EXHAUSTED = f"""
    UPDATE tasks
    SET status = 'failed', finished_at = {AT_NOW}, lease_expires_at = NULL,
        error = 'WorkerLost: the task was interrupted ' || attempts
                || ' times (its worker stopped renewing the lease); giving up after MAX_ATTEMPTS='
                || :max_attempts
    WHERE status = 'pending' AND lease_expires_at < {AT_NOW} AND attempts >= :max_attempts
    RETURNING id, attempts
    """

    REQUEUE_EXPIRED = f"""
    UPDATE tasks
    SET status = 'submitted', worker_id = NULL, started_at = NULL, lease_expires_at = NULL
    WHERE status = 'pending' AND lease_expires_at < {AT_NOW}
    RETURNING id, attempts
    """

    RENEW_LEASE = f"""
    UPDATE tasks SET lease_expires_at = {AT_NOW} + :lease_seconds WHERE {_OWNED} RETURNING cancel_requested
    """

    # A worker may claim several tasks at once: started_at becomes the moment this one really started.
    COMPLETE = f"""
    UPDATE tasks
    SET status = 'completed', result = :result, output = :output, started_at = coalesce(:started, started_at),
        finished_at = :now, lease_expires_at = NULL, {_DETAILS}
    WHERE {_OWNED}
    """

    FAIL = f"""
    UPDATE tasks
    SET status = 'failed', error = :error, started_at = coalesce(:started, started_at), finished_at = :now,
        lease_expires_at = NULL, {_DETAILS}
    WHERE {_OWNED}
    """

    MARK_CANCELLED = f"""
    UPDATE tasks
    SET status = 'cancelled', finished_at = :now, lease_expires_at = NULL
    WHERE {_OWNED}
    """

    RELEASE = f"""
    UPDATE tasks
    SET status = 'submitted', attempts = attempts - 1, worker_id = NULL,
        started_at = NULL, lease_expires_at = NULL
    WHERE {_OWNED}
    """

    # A claim whose answer was lost with its connection may have been committed: its worker puts
    # back whatever the database says it holds, as if never claimed (it knows of none of them).
    RELEASE_ALL = """
    UPDATE tasks
    SET status = 'submitted', attempts = attempts - 1, worker_id = NULL, started_at = NULL, lease_expires_at = NULL
    WHERE status = 'pending' AND worker_id = :worker
    RETURNING id
    """

    CANCEL_SUBMITTED = """
    UPDATE tasks SET status = 'cancelled', finished_at = :now
    WHERE id = :id AND status = 'submitted'
    RETURNING status
    """

    # TRUE is 1 in SQLite's integer column and a boolean in PostgreSQL's.
    REQUEST_CANCEL = """
    UPDATE tasks SET cancel_requested = TRUE
    WHERE id = :id AND status = 'pending'
    RETURNING status
    """

    BEAT_WORKER = f"""
    INSERT INTO workers (id, host, pid, started_at, last_heartbeat, task_id)
    VALUES (:id, :host, :pid, {AT_NOW}, {AT_NOW}, :task_id)
    ON CONFLICT (id) DO UPDATE SET last_heartbeat = excluded.last_heartbeat, task_id = excluded.task_id
    """

    REMOVE_WORKER = "DELETE FROM workers WHERE id = :id"

    FORGET_DEAD_WORKERS = f"DELETE FROM workers WHERE last_heartbeat < {AT_NOW} - :silent_for"

    LIVE_WORKER_COUNT = f"""
    SELECT count(*) AS n, coalesce(sum(CASE WHEN host = :host THEN 1 ELSE 0 END), 0) AS here
    FROM workers WHERE last_heartbeat >= {AT_NOW} - :within
    """

    LIVE_WORKERS = f"""
    SELECT id, host, pid, started_at, last_heartbeat, task_id FROM workers
    WHERE last_heartbeat >= {AT_NOW} - :within ORDER BY started_at
    """

    # PostgreSQL spreads each count over shards (one row per status in SQLite): sum them.
    TASK_COUNTS = "SELECT status, sum(n) AS n FROM task_counts GROUP BY status"

    COUNTERS = "SELECT name, sum(value) AS value FROM counters GROUP BY name"

    PRUNE_FINISHED = """
    DELETE FROM tasks WHERE seq IN (
        SELECT seq FROM tasks
        WHERE finished_at < :before AND status IN ('completed', 'failed', 'cancelled')
        LIMIT :limit
    )
    """


MAX_TAG_FILTERS = 16
# One `AND seq IN (...)` per tag filter (TAG_FILTER_0 ...), each walking task_tags' primary key;
# written out here so that every dialect converts them like any other statement.
for _n in range(MAX_TAG_FILTERS):
    setattr(
        Queries,
        f"TAG_FILTER_{_n}",
        f"AND seq IN (SELECT task_seq FROM task_tags WHERE key = :tag_key_{_n} AND value = :tag_value_{_n})",
    )


Q = TypeVar("Q", bound=type[Queries])


def with_clock(queries: Q, convert: Callable[[str], str] = str) -> Q:
    """Give a dialect every statement it inherits from Queries, with its clock (NOW) written in
    where AT_NOW reads it, and converted to its placeholders by `convert`."""
    for name, text in vars(Queries).items():
        if name.isupper() and isinstance(text, str) and name not in vars(queries):
            setattr(queries, name, convert(text.replace("{now}", queries.NOW)))
    return queries


def tag_filter(queries: type[Queries], n: int) -> str:
    """The dialect's TAG_FILTER_<n>: the filter for the n-th tag of a list query."""
    return str(getattr(queries, f"TAG_FILTER_{n}"))


# Rows per INSERT of a batch's tasks: 12 values a row stay well under SQLite's 32,766 variables.
BATCH_INSERT_ROWS = 1000
# The columns of a batch's task rows, in the order insert_batch_tasks binds them (status aside).
BATCH_INSERT_COLUMNS = (
    "id",
    "circuit",
    "shots",
    "seed",
    "created_at",
    "circuit_bytes",
    "options",
    "tags",
    "batch_id",
    "batch_index",
    "owner",
    "turn",
)


_BATCH_INSERTS: dict[tuple[str, int], str] = {}


def insert_batch_tasks(queries: type[Queries], rows: int) -> str:
    """One INSERT of `rows` tasks of a batch, with positional parameters, BATCH_INSERT_COLUMNS for
    each row in turn. One statement, not one per task: PostgreSQL's counters are then kept once per
    batch instead of once per task (updating one row thousands of times in a transaction slows
    every update down). Positional, because SQLite looks each named parameter up by a linear
    search: binding 11,000 names took a 1,000-task batch 0.1-0.3 s of CPU, most of its cost."""
    known = _BATCH_INSERTS.get((queries.__qualname__, rows))
    if known is not None:
        return known
    mark = queries.positional
    row = "(" + ", ".join([mark, "'submitted'", *[mark] * (len(BATCH_INSERT_COLUMNS) - 1)]) + ")"
    text = (
        "INSERT INTO tasks (id, status, "
        + ", ".join(BATCH_INSERT_COLUMNS[1:])
        + ") VALUES "
        + ", ".join([row] * rows)
        + " RETURNING seq, batch_index"
    )
    _BATCH_INSERTS[(queries.__qualname__, rows)] = text
    return text
