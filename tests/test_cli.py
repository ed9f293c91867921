"""The `qtq` command, run as a user runs it: the installed console script in a subprocess, against
the real running service. Output piped (not a terminal) must be plain text or one line of JSON,
with no control characters; a pseudo-terminal gets the bars."""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import uuid
from pathlib import Path

import pytest
from qtq import Client
from qtq.cli import EPILOG, build_parser
from qtq.display import counts_table

from tests.services import BELL_QASM3

QTQ = Path(sys.executable).with_name("qtq")
BROKEN_BELL = BELL_QASM3.replace("h q[0];", "h q[0]")
ONE = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[1] q;\nbit[1] c;\nx q[0];\nc[0] = measure q[0];\n'
ZERO = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[1] q;\nbit[1] c;\nc[0] = measure q[0];\n'
RX = (
    'OPENQASM 3.0;\ninclude "stdgates.inc";\ninput float theta;\nqubit[1] q;\nbit[1] c;\n'
    "rx(theta) q[0];\nc[0] = measure q[0];\n"
)
SLOW = (
    'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[1] q;\nbit[1] c;\n'
    "for int i in [1:200000] { x q[0]; }\nc[0] = measure q[0];\n"
)
# C0 and C1 control characters but the newline that ends a line: carriage returns, escapes, CSI.
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def qtq(
    *args: str, url: str, stdin: str | None = None, timeout: float = 90, api_key: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed `qtq` with QTQ_URL (and QTQ_API_KEY, if given) set, its output piped."""
    assert QTQ.exists(), f"{QTQ} is missing: `make install` installs the client and its command"
    env = {k: v for k, v in os.environ.items() if k != "QTQ_API_KEY"} | {"QTQ_URL": url, "COLUMNS": "100"}
    if api_key is not None:
        env["QTQ_API_KEY"] = api_key
    done = subprocess.run(
        [str(QTQ), *args], input=stdin, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    for stream in (done.stdout, done.stderr):
        assert not CONTROL.search(stream), f"control characters in {stream!r}"
    return done


@pytest.fixture
def files(tmp_path: Path) -> Path:
    for name, text in {"bell.qasm": BELL_QASM3, "broken.qasm": BROKEN_BELL, "one.qasm": ONE, "zero.qasm": ZERO}.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "rx.qasm").write_text(RX)
    (tmp_path / "slow.qasm").write_text(SLOW)
    return tmp_path


def test_submit_wait_prints_the_counts_as_a_table(base_url: str, files: Path) -> None:
    done = qtq("submit", str(files / "bell.qasm"), "--shots", "1000", "--seed", "7", "--wait", url=base_url)
    assert done.returncode == 0 and done.stderr == "", done
    header, *rows = done.stdout.splitlines()
    assert re.fullmatch(r"[0-9a-f-]{36}  completed  1000 shots  seed 7", header)
    assert rows == ["11  511   51.1%", "00  489   48.9%"]  # piped: no bars


def test_json_output_is_one_line_of_the_services_json(base_url: str) -> None:
    done = qtq("submit", "-", "--shots", "1000", "--seed", "7", "--wait", "--json", url=base_url, stdin=BELL_QASM3)
    assert done.returncode == 0 and done.stderr == "", done
    assert done.stdout.count("\n") == 1 and done.stdout.endswith("\n")
    task = json.loads(done.stdout)
    assert task["status"] == "completed" and task["result"] == {"11": 511, "00": 489}
    again = qtq("--json", "get", task["task_id"], url=base_url)  # --json before the command works too
    assert json.loads(again.stdout)["result"] == task["result"]


def test_submit_prints_the_id_then_get_and_wait_show_the_tasks(base_url: str, files: Path) -> None:
    first = qtq("submit", str(files / "one.qasm"), "--shots", "5", url=base_url)
    second = qtq("submit", str(files / "zero.qasm"), "--shots", "5", url=base_url)
    ids = [first.stdout.strip(), second.stdout.strip()]
    assert all(re.fullmatch(r"[0-9a-f-]{36}", task_id) for task_id in ids), (first, second)
    waited = qtq("wait", *ids, "--json", "--timeout", "60", url=base_url)
    assert waited.returncode == 0, waited
    assert [task["result"] for task in json.loads(waited.stdout)] == [{"1": 5}, {"0": 5}]
    shown = qtq("get", ids[0], "--wait", url=base_url)
    assert shown.stdout.splitlines()[1:] == ["1  5  100.0%"]


def test_a_failed_task_exits_1_with_its_error_on_stderr(base_url: str, files: Path) -> None:
    done = qtq("submit", str(files / "broken.qasm"), "--wait", url=base_url)
    assert done.returncode == 1
    task_id = done.stdout.split()[0]
    assert done.stdout == f"{task_id}  failed  1024 shots\n"
    assert done.stderr == f"qtq: task {task_id} failed: QASM3ParsingError: line 6:0 missing ';' at 'cx'\n"
    as_json = qtq("get", task_id, "--json", url=base_url)
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["error"].startswith("QASM3ParsingError")


def test_errors_exit_with_their_status(base_url: str, files: Path) -> None:
    missing = qtq("get", "no-such-task", url=base_url)
    assert (missing.returncode, missing.stdout, missing.stderr) == (3, "", "qtq: not found: Task not found\n")
    refused = qtq("submit", str(files / "bell.qasm"), "--shots", "0", url=base_url)
    assert refused.returncode == 2
    assert refused.stderr == "qtq: refused: shots: Input should be greater than or equal to 1\n"
    usage = qtq("submit", url=base_url)
    assert usage.returncode == 2 and "the following arguments are required: FILE" in usage.stderr
    bad_param = qtq("submit", str(files / "rx.qasm"), "--param", "theta", url=base_url)
    assert bad_param.returncode == 2 and "write NAME=VALUE or NAME=V1,V2,..." in bad_param.stderr
    no_file = qtq("submit", str(files / "nothing.qasm"), url=base_url)
    assert no_file.returncode == 2 and "No such file or directory" in no_file.stderr
    with __import__("socket").socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{closed.getsockname()[1]}"
        unreachable = qtq("get", "x", "--retries", "0", "--url", nobody, url=base_url)
    assert unreachable.returncode == 4 and unreachable.stderr.startswith(
        f"qtq: GET {nobody}/tasks/x failed: ConnectError"
    )


def test_list_filters_by_tag(base_url: str, files: Path) -> None:
    run = uuid.uuid4().hex[:12]
    with Client(base_url) as client:  # setting up: the client is quicker than three processes
        ids = [client.submit(ONE, shots=1, tags={"run": run, "i": str(i)}).id for i in range(3)]
    listed = qtq("list", "--tag", f"run={run}", "--json", url=base_url)
    assert [item["task_id"] for item in json.loads(listed.stdout)] == ids[::-1]
    one = qtq("list", "--tag", f"run={run}", "--tag", "i=1", url=base_url)
    assert one.returncode == 0 and one.stdout.split()[0] == ids[1] and one.stdout.count("\n") == 1
    assert f"i=1,run={run}" in one.stdout or f"run={run},i=1" in one.stdout
    two = qtq("list", "--tag", f"run={run}", "--limit", "2", "--json", url=base_url)
    assert len(json.loads(two.stdout)) == 2
    with Client(base_url) as client:
        broken = client.submit(BROKEN_BELL, tags={"run": run})
        broken.wait(timeout=60)
    failed = qtq("list", "--tag", f"run={run}", "--status", "failed", "--json", url=base_url)
    assert [item["task_id"] for item in json.loads(failed.stdout)] == [broken.id]


def test_batch_wait_shows_each_file_in_order_without_a_bar_when_piped(base_url: str, files: Path) -> None:
    names = [str(files / n) for n in ("one.qasm", "zero.qasm", "broken.qasm", "one.qasm")]
    done = qtq("batch", *names, "--shots", "10", "--wait", "--timeout", "60", "--json", url=base_url)
    assert done.returncode == 1  # one task failed
    body = json.loads(done.stdout)
    assert body["states"] == {"completed": 3, "failed": 1}
    assert [t.get("result") for t in body["tasks"]] == [{"1": 10}, {"0": 10}, None, {"1": 10}]
    failed = body["tasks"][2]
    assert done.stderr == f"qtq: {names[2]} (task {failed['task_id']}) failed: {failed['error']}\n"
    human = qtq("batch", *names[:2], "--shots", "10", "--wait", url=base_url)
    assert human.returncode == 0 and human.stderr == "", human  # the progress bar stays off the pipe
    lines = human.stdout.splitlines()
    assert re.fullmatch(r"batch [0-9a-f-]{36}", lines[0])
    assert [line.split()[0::3] for line in lines[1:]] == [[names[0], "1:10"], [names[1], "0:10"]]
    submitted = qtq("batch", *names[:2], "--json", url=base_url)
    assert len(json.loads(submitted.stdout)["task_ids"]) == 2


def test_a_sweep_with_an_observable(base_url: str, files: Path) -> None:
    args = ["submit", str(files / "rx.qasm"), "--param", f"theta=0,{math.pi}", "--observable", "Z"]
    done = qtq(*args, "--shots", "100", "--seed", "7", "--wait", url=base_url)
    assert done.returncode == 0, done
    assert done.stdout.splitlines()[1:] == [
        "point 0: theta=0",
        "  0  100  100.0%",
        "  <Z> = 1",
        "point 1: theta=3.14159",
        "  1  100  100.0%",
        "  <Z> = -1",
    ]


def test_cancel_then_wait_exits_1_and_a_finished_task_cannot_be_cancelled(base_url: str, files: Path) -> None:
    with Client(base_url) as client:
        task_id = client.submit(SLOW, shots=1).id
        finished = client.submit(ONE, shots=1).wait(timeout=60).id
    timed_out = qtq("wait", task_id, "--timeout", "0.2", url=base_url)
    assert timed_out.returncode == 5 and "is still" in timed_out.stderr
    cancelled = qtq("cancel", task_id, url=base_url)
    assert cancelled.returncode == 0 and cancelled.stdout.startswith(f"{task_id} cancel"), cancelled
    waited = qtq("wait", task_id, "--timeout", "30", url=base_url)
    assert waited.returncode == 1 and waited.stderr == f"qtq: task {task_id} cancelled: cancelled\n"
    assert qtq("cancel", task_id, url=base_url).returncode == 0  # already cancelled: nothing to do
    late = qtq("cancel", finished, url=base_url)
    assert late.returncode == 2 and late.stderr == "qtq: refused: Task is already completed\n"


def run_in_terminal(*args: str, url: str) -> str:
    """Run qtq with stdout and stderr on a pseudo-terminal; what it wrote there."""
    main, other = pty.openpty()
    # A new pseudo-terminal is 0 columns wide, and tqdm fits its bar to that: give it a real size.
    fcntl.ioctl(other, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    env = {**os.environ, "QTQ_URL": url, "COLUMNS": "100"}
    process = subprocess.Popen([str(QTQ), *args], stdout=other, stderr=other, env=env)
    os.close(other)
    output = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the terminal's other side has closed
            break
        if not chunk:
            break
        output += chunk
    os.close(main)
    assert process.wait(60) == 0
    return output.decode()


def test_a_terminal_gets_bars_and_a_progress_bar(base_url: str, files: Path) -> None:
    table = run_in_terminal(
        "submit", str(files / "bell.qasm"), "--shots", "1000", "--seed", "7", "--wait", url=base_url
    )
    assert "11  511   51.1%  " + "█" * 40 in table and "00  489   48.9%  " + "█" * 38 in table
    batch = run_in_terminal("batch", str(files / "one.qasm"), str(files / "zero.qasm"), "--wait", url=base_url)
    assert "\r" in batch and "2/2" in batch and "100%" in batch  # tqdm's bar, drawn on the terminal


@pytest.mark.database_independent
def test_help_names_every_command_and_each_commands_help_gives_the_exit_statuses() -> None:
    done = qtq("--help", url="http://127.0.0.1:1")  # the README shows this output (test_readme)
    assert done.returncode == 0
    commands = ("submit", "get", "wait", "list", "cancel", "batch")
    for command in commands:
        assert re.search(rf"^    {command} +\S", done.stdout, re.MULTILINE), command
    assert "exit status:\n  0  success\n  1  a task failed" in done.stdout
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert tuple(subparsers.choices) == commands
    for sub in subparsers.choices.values():
        assert sub.format_help().endswith(EPILOG)


def test_control_characters_from_a_task_are_escaped_never_sent_to_the_terminal(base_url: str, files: Path) -> None:
    run = uuid.uuid4().hex[:12]
    hostile = "\x1b[2J\x9b31m\nline"
    task_id = qtq("submit", str(files / "one.qasm"), "--tag", f"run={run}", "--tag", f"note={hostile}", url=base_url)
    listed = qtq("list", "--tag", f"run={run}", url=base_url)  # qtq() fails on any control character
    assert "note=\\x1b[2J\\x9b31m\\x0aline" in listed.stdout
    as_json = qtq("get", task_id.stdout.strip(), "--json", url=base_url)
    assert json.loads(as_json.stdout)["tags"]["note"] == hostile and as_json.stdout.isascii()


def test_a_table_of_many_outcomes_shows_the_16_most_frequent_and_sums_the_rest() -> None:
    """As the dashboard: 16 rows in order of frequency (ties by outcome), then one `other` row
    with the rest's number (thousands separated) and their summed count."""
    counts = {format(i, "015b"): 1 for i in range(100, 20_100)} | {format(0, "015b"): 50, format(1, "015b"): 30}
    rows = [row.split() for row in counts_table(counts, bars=False)]
    assert len(rows) == 17
    assert [row[:2] for row in rows[:2]] == [[format(0, "015b"), "50"], [format(1, "015b"), "30"]]
    assert [row[0] for row in rows[2:16]] == [format(i, "015b") for i in range(100, 114)]
    assert rows[16][:4] == ["other", "(19,986", "outcomes)", "19986"]
