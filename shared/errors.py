"""One family of errors for the whole service; driver errors are wrapped once at the store boundary."""


class QueueError(Exception):
    """Base class of every error this service raises on purpose."""


class ConfigError(QueueError):
    """A setting has a value the service cannot start with."""


class StoreError(QueueError):
    """The database failed in a way the caller cannot fix."""


class StoreBusy(StoreError):
    """The database stayed locked past the busy timeout; the client should retry."""


class StoreUnavailable(StoreError):
    """The database file cannot be opened or read."""


class QuotaExceeded(QueueError):
    """A submission would put more of a key's tasks in the queue than its max_queued allows."""

    def __init__(self, owner: str, queued: int, adding: int, limit: int) -> None:
        super().__init__(
            f"key {owner!r} already has {queued} tasks submitted or pending; {adding} more would pass its "
            f"max_queued={limit}; retry when some have finished"
        )
        self.owner, self.queued, self.adding, self.limit = owner, queued, adding, limit


class ConnectionLost(StoreUnavailable):
    """The connection broke while a statement was under way: a write may or may not have been
    committed, and a read can be asked again on another connection."""


class StoreFull(StoreUnavailable):
    """The disk holding the database is full: writes fail (nothing is stored) until space is freed."""


class BackupError(QueueError):
    """A backup could not be taken; the message says why and what to do instead."""
