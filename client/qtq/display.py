"""What the `qtq` command prints for people: counts as a table (a bar per outcome on a terminal), tasks
as lines. Plain text only: no colour and no control characters, so a pipe gets the same table."""

from __future__ import annotations

import re
from typing import Any

from qtq.task import Counts, TaskView

# C0 and C1 control characters and DEL: text from a task (tags, errors) may hold any of them, and a
# terminal would obey an escape sequence.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# As the dashboard: the most frequent outcomes, then the rest summed in one row.
TOP_OUTCOMES = 16
BAR_WIDTH = 40


def printable(line: str) -> str:
    """The line with every control character written as an escape (`\\x1b`), newlines included."""
    return CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", line)


def counts_table(counts: Counts, bars: bool, indent: str = "") -> list[str]:
    """One row per outcome, most frequent first (ties by outcome): outcome, count, share, and a bar."""
    total = sum(counts.values())
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    rows = ranked[:TOP_OUTCOMES]
    if len(ranked) > TOP_OUTCOMES:
        rest = ranked[TOP_OUTCOMES:]
        rows.append((f"other ({len(rest):,} outcomes)", sum(n for _, n in rest)))
    if not rows:
        return [f"{indent}(no counts)"]
    key_width = max(len(key) for key, _ in rows)
    count_width = max(len(str(n)) for _, n in rows)
    most = max(n for _, n in rows)
    lines = []
    for key, n in rows:
        line = f"{indent}{key:<{key_width}}  {n:>{count_width}}  {n / total:>6.1%}"
        if bars:
            line += "  " + "█" * max(1 if n else 0, round(BAR_WIDTH * n / most))
        lines.append(line)
    return lines


def observable_label(observable: Any) -> str:
    """`ZZ`, or a weighted sum `0.5*ZZ - 0.5*YY`."""
    if isinstance(observable, str):
        return observable
    terms = [f"{coefficient:g}*{pauli}" for pauli, coefficient in observable]
    return " + ".join(terms).replace("+ -", "- ")


def expectation_lines(observables: list[Any], values: list[float], indent: str = "") -> list[str]:
    labels = [observable_label(o) for o in observables] or [f"#{i}" for i in range(len(values))]
    width = max(len(f"<{label}>") for label in labels)
    return [f"{indent}{'<' + label + '>':<{width}} = {value:.6g}" for label, value in zip(labels, values, strict=False)]


def header(task: TaskView) -> str:
    data = task.data
    parts = [task.id, task.status]
    if "shots" in data:
        parts.append(f"{data['shots']} shots")
    if "seed" in data:
        parts.append(f"seed {data['seed']}")
    if data.get("cancel_requested"):
        parts.append("cancel requested")
    if task.tags:
        parts.append(tag_text(task.tags))
    return "  ".join(parts)


def tag_text(tags: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in tags.items())


def task_lines(task: TaskView, bars: bool) -> list[str]:
    """A task's header, then what it produced (a failed task's error is the caller's, for stderr)."""
    lines = [header(task)]
    observables = list(task.data.get("observables") or [])
    points = task.points
    if points is not None:
        for index, point in enumerate(points):
            values = ", ".join(f"{name}={value:g}" for name, value in point.parameters.items())
            lines.append(f"point {index}: {values}")
            if point.counts:
                lines += counts_table(point.counts, bars, indent="  ")
            if point.expectation_values is not None:
                lines += expectation_lines(observables, point.expectation_values, indent="  ")
        return lines
    if task.counts is not None:
        lines += counts_table(task.counts, bars)
    if task.expectation_values is not None:
        lines += expectation_lines(observables, task.expectation_values)
    if task.memory is not None:
        lines.append(f"memory: {len(task.memory)} outcomes (--json shows them)")
    return lines


def summary_line(task: TaskView, label: str = "") -> str:
    """One line per task, for lists and batches: the id, the state, and the most frequent outcomes."""
    parts = [label, task.id, task.status] if label else [task.id, task.status]
    data = task.data
    if "created_at" in data and not label:
        parts.append(str(data["created_at"]))
    counts = task.counts
    if counts:
        top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        shown = "  ".join(f"{key}:{n}" for key, n in top[:4])
        parts.append(shown + (f"  (+{len(top) - 4} more)" if len(top) > 4 else ""))
    elif task.points is not None:
        parts.append(f"sweep of {len(task.points)} points")
    if task.tags:
        parts.append(tag_text(task.tags))
    return "  ".join(parts)
