"""The one-line errors users see on a failed task: `Type: message`, printable, bounded."""

from __future__ import annotations

import re
import sys

MAX_ERROR_CHARS = 500


class TaskError(Exception):
    """A failure the user can act on; `str()` is the one line stored on the task."""

    def __init__(self, kind: str, message: str) -> None:
        one_line = " ".join(unquote(message).split())
        one_line = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in one_line)
        if len(one_line) > MAX_ERROR_CHARS:
            one_line = one_line[: MAX_ERROR_CHARS - 3] + "..."
        super().__init__(f"{kind}: {one_line}")
        self.kind = kind


def unquote(message: str) -> str:
    """Some qiskit errors render as the repr of their message; drop that one pair of quotes."""
    message = message.strip()
    if len(message) >= 2 and message[0] == message[-1] and message[0] in "\"'":
        return message[1:-1]
    return message


def with_position(message: str, pattern: re.Pattern[str], form: str = "line {0}, column {1}: ") -> str:
    """Rewrite a parser's own position prefix (`4,0:`, `L4:C0`, `<input>:4,0:`) as words."""
    message = unquote(message)
    return pattern.sub(lambda m: form.format(m.group(1), m.group(2)), message, count=1)


def describe_unexpected(error: BaseException) -> str:
    """One line for an error nobody anticipated, without tracebacks or server paths."""
    message = " ".join(str(error).split()) or "no details"
    for prefix in {sys.prefix, sys.base_prefix}:
        message = message.replace(prefix, "<python>")
    return str(TaskError(type(error).__name__, message))


def memory_limit_error(max_memory_mb: int) -> str:
    """The one line for a task stopped by the simulation process's memory limit."""
    return str(
        TaskError(
            "MemoryLimitExceeded",
            f"the circuit needed more memory than WORKER_MAX_MEMORY_MB={max_memory_mb} allows "
            "(to parse, unroll or simulate it); use fewer qubits, bits, loop iterations or gates, "
            "or raise the setting",
        )
    )
