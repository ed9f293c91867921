"""Quantum Task Queue's Python client: `Client` (and `AsyncClient`) submit OpenQASM circuits or Qiskit
circuits to the service over HTTP and read back their counts; `qtq` is its command line.

    from qtq import Client

    with Client() as client:  # QTQ_URL, else http://127.0.0.1:8000
        print(client.submit(BELL, shots=1000, seed=7).result())
"""

from qtq._version import __version__
from qtq.aio import AsyncClient
from qtq.batch import AsyncBatch, Batch, BatchState
from qtq.client import Client
from qtq.errors import (
    APIError,
    Conflict,
    ConnectionFailed,
    NotFound,
    QTQError,
    ServiceUnavailable,
    TaskCancelled,
    TaskFailed,
    TooLarge,
    Unauthorized,
    ValidationError,
    WaitTimeout,
)
from qtq.task import AsyncTask, Counts, SweepPoint, Task

__all__ = [
    "APIError",
    "AsyncBatch",
    "AsyncClient",
    "AsyncTask",
    "Batch",
    "BatchState",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Counts",
    "NotFound",
    "QTQError",
    "ServiceUnavailable",
    "SweepPoint",
    "Task",
    "TaskCancelled",
    "TaskFailed",
    "TooLarge",
    "Unauthorized",
    "ValidationError",
    "WaitTimeout",
    "__version__",
]
