"""The `qtq` sub-commands: each reads its arguments, calls the client and prints for people or as
JSON; each returns the exit status (the codes are listed in the command's help, `qtq.cli.EPILOG`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qtq import display
from qtq._protocol import Deadline
from qtq.client import Client
from qtq.task import Task

OK, TASK_FAILED, USAGE, NOT_FOUND, UNAVAILABLE, TIMED_OUT = 0, 1, 2, 3, 4, 5


# -- output -----------------------------------------------------------------------------------


def emit_json(value: Any) -> None:
    """One line of JSON, ASCII only: json.dumps escapes every control character (and all else past ASCII)."""
    print(json.dumps(value, separators=(",", ":")))


def emit_lines(lines: Sequence[str]) -> None:
    """Lines for people, each with its control characters escaped."""
    print("\n".join(display.printable(line) for line in lines))


def warn(message: str) -> None:
    """A line on stderr, `qtq: …`, its control characters escaped."""
    print(f"qtq: {display.printable(message)}", file=sys.stderr)


def report_failures(tasks: Sequence[Task], labels: Sequence[str] | None = None) -> int:
    """Each failed or cancelled task's error on stderr; the exit status."""
    failed = 0
    for index, task in enumerate(tasks):
        if task.status in ("failed", "cancelled"):
            failed += 1
            what = f"{labels[index]} (task {task.id})" if labels else f"task {task.id}"
            warn(f"{what} {task.status}: {task.error or task.status}")
    return TASK_FAILED if failed else OK


def show_tasks(args: argparse.Namespace, tasks: Sequence[Task], single: bool) -> int:
    if args.json:
        emit_json(tasks[0].data if single else [task.data for task in tasks])
    else:
        bars = sys.stdout.isatty()
        lines: list[str] = []
        for task in tasks:
            lines += ([""] if lines else []) + display.task_lines(task, bars)
        emit_lines(lines)
    return report_failures(tasks)


# -- the commands -----------------------------------------------------------------------------


def read_circuit(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    return Path(name).read_text(encoding="utf-8")


def run_submit(args: argparse.Namespace, client: Client) -> int:
    task = client.submit(
        read_circuit(args.file),
        shots=args.shots,
        seed=args.seed,
        parameters=dict(args.param) if args.param else None,
        observables=args.observable,
        memory=args.memory,
        method=args.method,
        noise=args.noise,
        tags=dict(args.tag) if args.tag else None,
    )
    if args.wait:
        return show_tasks(args, [task.wait(args.timeout)], single=True)
    if args.json:
        emit_json(task.data)
    else:
        emit_lines([task.id])
    return OK


def run_get(args: argparse.Namespace, client: Client) -> int:
    task = client.get(args.task_id)
    if args.wait:
        task.wait(args.timeout)
    return show_tasks(args, [task], single=True)


def run_wait(args: argparse.Namespace, client: Client) -> int:
    # One deadline for all: --timeout bounds the whole command, not each task.
    deadline = Deadline(args.timeout)
    tasks = []
    for task_id in args.task_ids:
        remaining = None if args.timeout is None else deadline.next_wait(float("inf"))
        tasks.append(client.get(task_id).wait(remaining))
    return show_tasks(args, tasks, single=False)


def run_list(args: argparse.Namespace, client: Client) -> int:
    tags = [f"{key}:{value}" for key, value in args.tag or []]
    page_size = min(args.limit, 500) if args.limit > 0 else 500
    tasks = []
    for task in client.list(status=args.status, tag=tags, batch_id=args.batch, page_size=page_size):
        tasks.append(task)
        if len(tasks) == args.limit:
            break
    if args.json:
        emit_json([task.data for task in tasks])
    else:
        emit_lines([display.summary_line(task) for task in tasks])
    return OK


def run_cancel(args: argparse.Namespace, client: Client) -> int:
    task = client.cancel(args.task_id)
    if args.json:
        emit_json(task.data)
    elif task.status == "cancelled":
        emit_lines([f"{task.id} cancelled"])
    else:
        emit_lines([f"{task.id} cancel requested: it is running; its worker stops it within about a second"])
    return OK


def run_batch(args: argparse.Namespace, client: Client) -> int:
    if args.files.count("-") > 1:
        raise ValueError("stdin (-) can be given only once")
    circuits = [read_circuit(name) for name in args.files]
    batch = client.submit_batch(circuits, shots=args.shots, seed=args.seed, tags=dict(args.tag) if args.tag else None)
    task_ids = batch.task_ids or []
    if not args.wait:
        if args.json:
            emit_json({"batch_id": batch.id, "task_ids": task_ids})
        else:
            emit_lines(
                [
                    f"batch {batch.id}",
                    *(f"{name}  {task_id}" for name, task_id in zip(args.files, task_ids, strict=True)),
                ]
            )
        return OK
    batch.wait(args.timeout, progress=True)
    tasks = list(batch.tasks())
    if args.json:
        state = batch.state
        emit_json({"batch_id": batch.id, "states": state.states if state else {}, "tasks": [t.data for t in tasks]})
    else:
        width = max(len(name) for name in args.files)
        lines = [f"batch {batch.id}"]
        lines += [display.summary_line(task, f"{name:<{width}}") for name, task in zip(args.files, tasks, strict=True)]
        emit_lines(lines)
    return report_failures(tasks, args.files)
