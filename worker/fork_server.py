"""What the fork server of a worker's simulation processes loads before its first fork.

A worker's simulation processes are forked from a server process of their own (multiprocessing's
fork server; see `worker.sandbox`) that has imported Qiskit, Aer and NumPy once: a new simulation
process, after a crash, a timeout, the memory limit or the cancel of a running task, is ready in
tens of milliseconds instead of the ~0.6 s of importing them again, during which the worker ran
nothing.

The fork server imports this module and nothing else does: importing it also sets up that process.
- SIGINT and SIGTERM are ignored there: a stop signal sent to the whole process group (Ctrl-C, a
  service manager) is the worker's to handle, and the fork server's death would stop the running
  simulation with it.
- The fork server dies with the worker. Every simulation process holds the fork server's "alive"
  pipe open, so it would otherwise outlive a killed worker, and the simulation processes, which
  die with their parent, with it.
"""

from __future__ import annotations

import signal

# First, before the 0.6 s import below (multiprocessing ignores SIGINT here, but only once this
# module is loaded).
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)

from shared.runtime import freeze_what_is_loaded  # noqa: E402
from worker import sandbox  # noqa: E402

sandbox.die_with_parent()

from worker import executor  # noqa: E402, F401 - loaded once, for every fork

# The forks share these pages until they write to them: the cyclic collector's full passes, which
# would touch every object, leave them out.
freeze_what_is_loaded()
