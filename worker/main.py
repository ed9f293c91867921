"""`python -m worker.main`: run one worker until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger("worker")


def main(argv: list[str] | None = None) -> int:
    # Imported here, not above: multiprocessing imports the parent's main module again (as
    # __mp_main__) in every simulation process it forks, one per worker and again after every
    # crash, timeout, memory limit or cancel of a running task. Its top stays light, so none spends
    # 0.14 s importing the settings, the store and the worker loop it never uses.
    from shared.backends import open_store
    from shared.config import get_settings
    from shared.errors import StoreError
    from shared.logs import configure_logging
    from shared.runtime import freeze_what_is_loaded
    from worker.sandbox import SimulationUnavailable
    from worker.worker import Worker

    parser = argparse.ArgumentParser(description="Run one Quantum Task Queue worker.")
    parser.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    parser.add_argument("--max-tasks", type=int, default=None, help="exit after this many tasks")
    args = parser.parse_args(argv)

    settings = get_settings()
    configure_logging(settings, "worker")
    store = open_store(settings, pool_size=4)  # the loop, the lease heartbeat, the presence beat
    try:
        store.initialize()
    except StoreError as error:
        logger.error("cannot start: %s", error)
        return 1
    worker = Worker(settings, store)
    freeze_what_is_loaded()
    with worker.signals_handled():
        try:
            worker.run(burst=args.burst, max_tasks=args.max_tasks)
        except SimulationUnavailable as error:
            logger.error("cannot run simulations, stopping: %s", error)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
