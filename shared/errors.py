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


class StoreFull(StoreUnavailable):
    """The disk holding the database is full: writes fail (nothing is stored) until space is freed."""


class BackupError(QueueError):
    """A backup could not be taken; the message says why and what to do instead."""
