"""The `qtq` command's parser and entry point: its options, their help (which the README shows
verbatim), and the one mapping from errors to exit statuses. The sub-commands are in `commands`.

Human output by default (counts as a table, with a bar per outcome when stdout is a terminal);
`--json` prints one line of JSON and nothing else. Errors go to stderr.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any

from qtq._http import DEFAULT_URL, Retry
from qtq.client import Client
from qtq.commands import (
    NOT_FOUND,
    TIMED_OUT,
    UNAVAILABLE,
    USAGE,
    run_batch,
    run_cancel,
    run_get,
    run_list,
    run_submit,
    run_wait,
    warn,
)
from qtq.errors import (
    APIError,
    Conflict,
    ConnectionFailed,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    ValidationError,
    WaitTimeout,
)

METHODS = ("automatic", "statevector", "density_matrix", "stabilizer", "matrix_product_state", "extended_stabilizer")
STATES = ("submitted", "pending", "completed", "failed", "cancelled")

DESCRIPTION = """\
Submit OpenQASM circuits to a Quantum Task Queue service, wait for them and read their counts.
Output is for people (counts as a table, with a bar per outcome on a terminal); --json prints
the service's JSON on one line instead."""
EPILOG = f"""environment:
  QTQ_URL      the service (default {DEFAULT_URL}); --url overrides it
  QTQ_API_KEY  sent as "Authorization: Bearer KEY"; --api-key overrides it

exit status:
  0  success
  1  a task failed or was cancelled (its error is on stderr)
  2  bad arguments, or the service refused the request (422, 409, 413)
  3  no task or batch has this id (404)
  4  the service could not be reached, stayed unavailable after retries, or refused the API key
  5  --timeout ran out before the tasks were finished
"""


# -- argument types ---------------------------------------------------------------------------


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def parameter(text: str) -> tuple[str, int | float | list[int | float]]:
    """`theta=0.5` (one value) or `theta=0,0.5,1.0` (a sweep over the values; `theta=0.5,` is a one-point sweep)."""
    name, equals, values = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: write NAME=VALUE or NAME=V1,V2,...")
    try:
        if "," not in values:
            return name, _number(values)
        return name, [_number(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: the values must be numbers") from None


def tag(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: write KEY=VALUE")
    return key, value


def observable(text: str) -> Any:
    """`ZZ`, or a weighted sum as JSON: `[["ZZ", 0.5], ["XX", 0.5]]`."""
    if not text.lstrip().startswith("["):
        return text
    try:
        return json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: not valid JSON ({error})") from None


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a JSON object")
    return value


# -- the parser -------------------------------------------------------------------------------


def _connection_options(parser: argparse.ArgumentParser, default: Any) -> None:
    # On the main parser and on every sub-command, so `qtq --json get ID` and `qtq get ID --json`
    # both work; the sub-commands' copies default to SUPPRESS so they never undo the main one's.
    parser.add_argument("--url", default=default, help=f"the service's URL (default: QTQ_URL, else {DEFAULT_URL})")
    parser.add_argument("--api-key", default=default, help="API key (default: QTQ_API_KEY)")
    parser.add_argument("--json", action="store_true", default=default or False, help="print JSON only")
    parser.add_argument(
        "--retries",
        type=int,
        default=default,
        metavar="N",
        help=f"retries on connection errors, 503 and 429 (default {Retry.retries})",
    )


def _wait_options(parser: argparse.ArgumentParser, wait_flag: bool) -> None:
    if wait_flag:
        parser.add_argument("--wait", action="store_true", help="wait until finished (long-poll)")
    parser.add_argument("--timeout", type=float, metavar="SECONDS", help="give up waiting after this long (exit 5)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qtq", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _connection_options(parser, None)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = argparse.ArgumentParser(add_help=False)
    _connection_options(common, argparse.SUPPRESS)

    def command(name: str, summary: str, run: Callable[[argparse.Namespace, Client], int]) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=summary,
            description=summary,
            parents=[common],
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(run=run)
        return sub

    submit = command("submit", "Submit one circuit; print its task id (or its counts, with --wait).", run_submit)
    submit.add_argument("file", metavar="FILE", help="an OpenQASM 3 or 2 file, or - for stdin")
    submit.add_argument("--shots", type=int, metavar="N", help="shots (the service's default: 1024)")
    submit.add_argument("--seed", type=int, metavar="N", help="simulator seed: the same seed gives the same counts")
    submit.add_argument(
        "--param",
        type=parameter,
        action="append",
        metavar="NAME=V[,V...]",
        help="a value for an `input float NAME;`; several comma-separated values make a sweep",
    )
    submit.add_argument(
        "--observable",
        type=observable,
        action="append",
        metavar="PAULI",
        help='a Pauli string (ZZ) whose expectation value to compute, or a JSON sum: [["ZZ", 0.5], ["XX", 0.5]]',
    )
    submit.add_argument("--memory", action="store_true", default=None, help="also return every shot's outcome")
    submit.add_argument(
        "--method", choices=METHODS, metavar="METHOD", help="Aer's simulation method: " + ", ".join(METHODS)
    )
    submit.add_argument("--noise", type=json_object, metavar="JSON", help="e.g. '{\"depolarizing_2q\": 0.01}'")
    submit.add_argument("--tag", type=tag, action="append", metavar="KEY=VALUE", help="label the task (repeatable)")
    _wait_options(submit, True)

    get = command("get", "Show a task: its state and its counts or error.", run_get)
    get.add_argument("task_id", metavar="ID")
    _wait_options(get, True)

    wait = command("wait", "Wait until every task given is finished, and show each.", run_wait)
    wait.add_argument("task_ids", metavar="ID", nargs="+")
    _wait_options(wait, False)

    listing = command("list", "List tasks, newest first.", run_list)
    listing.add_argument(
        "--status", choices=STATES, metavar="STATE", help="only tasks in this state: " + ", ".join(STATES)
    )
    listing.add_argument("--tag", type=tag, action="append", metavar="KEY=VALUE", help="only tasks with this tag")
    listing.add_argument("--batch", metavar="BATCH_ID", help="only the tasks of this batch")
    listing.add_argument("--limit", type=int, default=50, help="at most this many tasks; 0 for all (default 50)")

    cancel = command("cancel", "Cancel a task that has not finished.", run_cancel)
    cancel.add_argument("task_id", metavar="ID")

    batch = command("batch", "Submit several circuit files as one batch (a progress bar with --wait).", run_batch)
    batch.add_argument("files", metavar="FILE", nargs="+", help="OpenQASM files, in order (- for stdin, once)")
    batch.add_argument("--shots", type=int, metavar="N", help="shots for every task")
    batch.add_argument("--seed", type=int, metavar="N", help="simulator seed for every task")
    batch.add_argument("--tag", type=tag, action="append", metavar="KEY=VALUE", help="label the batch (repeatable)")
    _wait_options(batch, True)
    return parser


# -- main -------------------------------------------------------------------------------------


def fail(status: int, message: str) -> int:
    warn(message)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; the exit status is returned (see EPILOG)."""
    args = build_parser().parse_args(argv)
    try:
        retries = args.retries if args.retries is not None else Retry.retries
        with Client(args.url, args.api_key, retries=retries) as client:
            status: int = args.run(args, client)
            return status
    except ValidationError as error:
        for message in error.messages:
            warn(f"refused: {message}")
        return USAGE
    except NotFound as error:
        return fail(NOT_FOUND, f"not found: {error.detail}")
    except Conflict as error:
        return fail(USAGE, f"refused: {error.detail}")
    except (ConnectionFailed, ServiceUnavailable, Unauthorized) as error:
        return fail(UNAVAILABLE, str(error))
    except APIError as error:
        return fail(USAGE if 400 <= error.status_code < 500 else UNAVAILABLE, str(error))
    except WaitTimeout as error:
        return fail(TIMED_OUT, str(error))
    except (OSError, ValueError) as error:
        return fail(USAGE, str(error))
    except KeyboardInterrupt:
        return 130
