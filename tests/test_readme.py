"""The README's examples, run as a user runs them: its shell one-liners and Python example against
the service, its count keys and its OpenQASM table in-process through the worker's own code
(`worker.executor.execute`, what the simulation process runs for every task).

Everything is read from the README itself, so the README cannot drift from what the service does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.services import BELL_QASM3, ROOT, wait_done
from worker import executor
from worker.results import Outcome, RunResult

README_PATH = ROOT / "README.md"
README = README_PATH.read_text(encoding="utf-8")
README_URL = "http://127.0.0.1:8000"
SIMULATOR = executor.Simulator(max_memory_mb=4096, threads=1)


def flat(text: str) -> str:
    """The text with every run of whitespace as one space, so a phrase matches however it is wrapped."""
    return " ".join(text.split())


def section(heading: str, text: str = README) -> str:
    """The text under `heading` (a whole line, e.g. `### From Python`), up to the next heading of its
    level or higher; `#` lines inside code blocks are not headings."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.splitlines(keepends=True)
    start = lines.index(heading + "\n") + 1
    in_code = False
    for end in range(start, len(lines)):
        if lines[end].startswith("```"):
            in_code = not in_code
        elif not in_code and re.match(rf"#{{1,{level}}} ", lines[end]):
            break
    else:
        end = len(lines)
    return "".join(lines[start:end])


def fenced(text: str, language: str) -> list[str]:
    """The contents of the code blocks fenced as ```language (an empty language: plain ``` blocks)."""
    blocks: list[str] = []
    opened: str | None = None  # the language of the block being read
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            if opened is None:
                opened, body = line[3:].strip(), ""
                continue
            if opened == language:
                blocks.append(body)
            opened = None
        elif opened is not None:
            body += line
    return blocks


# -- Sending a .qasm file ---------------------------------------------------------------------

QASM_FILE = section("### Sending a `.qasm` file")
QASM_COMMANDS = fenced(QASM_FILE, "bash")


@pytest.mark.database_independent
def test_the_qasm_file_section_shows_bell_and_four_commands() -> None:
    assert fenced(QASM_FILE, "qasm") == [BELL_QASM3]
    assert len(QASM_COMMANDS) == 4
    # curl alone first (the file as the body, then the same without its Content-Type); the JSON
    # wrappers after it, python3 before the optional jq.
    programs = [set(re.findall(r"(?:^|\| )(\w+) ", block.splitlines()[0])) for block in QASM_COMMANDS]
    assert programs == [{"curl"}, {"curl"}, {"python3", "curl"}, {"jq", "curl"}]
    assert "-H 'Content-Type: text/plain'" in QASM_COMMANDS[0] and "-H" not in QASM_COMMANDS[1].splitlines()[0]


@pytest.mark.parametrize("block", QASM_COMMANDS, ids=["text", "form-encoded", "python3", "jq"])
def test_qasm_file_commands_do_what_the_readme_says(
    block: str, base_url: str, client: httpx.Client, tmp_path: Path
) -> None:
    command, *shown = block.splitlines()
    if command.startswith("jq ") and shutil.which("jq") is None:
        pytest.skip("jq is not installed here")
    assert README_URL in command
    (tmp_path / "bell.qasm").write_text(fenced(QASM_FILE, "qasm")[0])
    done = subprocess.run(
        ["bash", "-c", command.replace(README_URL, base_url)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stderr == "", done
    if shown:  # the README shows the answer as a comment under the command
        assert [f"# {done.stdout.strip()}"] == shown
        return
    assert re.fullmatch(r'\{"task_id":"[0-9a-f-]{36}","status":"submitted"\}\n?', done.stdout), done.stdout
    assert '`{"task_id":"…","status":"submitted"}`' in QASM_FILE
    task = wait_done(client, json.loads(done.stdout)["task_id"])
    assert task["status"] == "completed", task
    assert set(task["result"]) == {"00", "11"} and sum(task["result"].values()) == 1000
    # What each command asks beyond the shots: the query's tag, or the JSON body's observable.
    asked = {"tags": {"project": "bell"}} if "?shots=" in command else {"expectation_values": [1.0]}
    assert {key: task.get(key) for key in asked} == asked, task


# -- From Python ------------------------------------------------------------------------------

PYTHON = section("### From Python")
# Each example is followed by what it prints.
PYTHON_EXAMPLES = list(zip(fenced(PYTHON, "python"), fenced(PYTHON, ""), strict=True))


def run_python_example(code: str, base_url: str) -> str:
    env = {**os.environ, "QTQ_URL": base_url}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    # stderr is not a terminal here, so the batch example's progress bar stays off: nothing on stderr.
    assert done.returncode == 0 and done.stderr == "", done
    return done.stdout


@pytest.mark.parametrize(
    ("code", "shown"),
    PYTHON_EXAMPLES,
    ids=["submit", "batch", "sweep", "asyncio", "qiskit-backend", "qiskit-backend-primitives", "qiskit-primitives"],
)
def test_python_examples_print_what_the_readme_shows(code: str, shown: str, base_url: str) -> None:
    assert "from qtq import " in code
    assert run_python_example(code, base_url) == shown


def test_python_example_prints_a_failed_tasks_error(base_url: str) -> None:
    code = PYTHON_EXAMPLES[0][0]
    broken = code.replace("h q[0];\ncx", "h q[0]\ncx", 1)
    assert broken != code
    printed = run_python_example(broken, base_url).strip()
    assert f"it prints `{printed}`." in flat(PYTHON)


# -- From the command line --------------------------------------------------------------------

CLI = section("### From the command line")
QTQ = Path(sys.executable).with_name("qtq")


def run_qtq(*args: str, base_url: str = "http://127.0.0.1:1", cwd: Path | None = None) -> str:
    env = {**os.environ, "QTQ_URL": base_url, "COLUMNS": "100"}
    done = subprocess.run([str(QTQ), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "", done
    return done.stdout


@pytest.mark.database_independent
def test_the_readme_shows_qtq_help_as_it_is() -> None:
    shown = fenced(CLI, "text")[-1]
    assert run_qtq("--help") == shown


def test_the_cli_example_prints_the_readme_table(base_url: str, tmp_path: Path) -> None:
    command = fenced(CLI, "bash")[0].strip()
    (tmp_path / "bell.qasm").write_text(fenced(QASM_FILE, "qasm")[0])
    printed = run_qtq(*command.split()[1:], base_url=base_url, cwd=tmp_path)
    header, *rows = fenced(CLI, "text")[0].splitlines()
    task_id = printed.split()[0]
    # Piped, the table has no bars: the README's rows without theirs.
    assert printed.splitlines() == [header.replace(header.split()[0], task_id), *(r.split("  █")[0] for r in rows)]


# -- Count keys -------------------------------------------------------------------------------

COUNT_KEYS = section("### Count keys")


@pytest.mark.database_independent
def test_count_keys_example_gives_the_readme_counts() -> None:
    (circuit,) = fenced(COUNT_KEYS, "qasm")
    (shown,) = fenced(COUNT_KEYS, "json")
    options = re.search(r'`"shots": (\d+), "seed": (\d+)`', COUNT_KEYS)
    assert options is not None
    result = executor.execute(SIMULATOR, circuit, int(options.group(1)), int(options.group(2)))
    assert result.outcome is Outcome.COUNTS and result.counts is not None, result.error
    assert result.counts == json.loads(shown)
    assert "Read `1 01 1` from the right" in COUNT_KEYS and "1 01 1" in result.counts


@pytest.mark.database_independent
def test_bit_zero_is_rightmost_and_openqasm2_registers_follow_the_same_rule() -> None:
    one_bit = BELL_QASM3.replace("h q[0];\ncx q[0], q[1];\n", "x q[0];\n")
    assert executor.execute(SIMULATOR, one_bit, 10, 1).counts == {"01": 10}
    qasm2 = (
        'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[3];\ncreg a[1];\ncreg b[2];\n'
        "x q[0];\nx q[2];\nmeasure q[0] -> a[0];\nmeasure q[1] -> b[0];\nmeasure q[2] -> b[1];\n"
    )
    assert "`creg a[1]; creg b[2];` gives keys like `10 1`" in flat(COUNT_KEYS)
    assert executor.execute(SIMULATOR, qasm2, 10, 1).counts == {"10 1": 10}


# -- OpenQASM support -------------------------------------------------------------------------

SUPPORT = section("## OpenQASM support")
(TEMPLATE,) = fenced(SUPPORT, "qasm")
TABLE = [
    [cell.strip() for cell in line.strip().strip("|").split("|")]
    for line in SUPPORT.splitlines()
    if line.startswith("| ") and not line.startswith(("| feature ", "| --- "))
]


def run_in_template(template: str, example: str, shots: int = 100, seed: int = 1) -> RunResult:
    """Run `example` in place of the template's placeholder line, as a worker would."""
    assert "// the example goes here\n" in template
    return executor.execute(SIMULATOR, template.replace("// the example goes here\n", example + "\n"), shots, seed)


def code(cell: str) -> str:
    """A table cell that is one `code span`, without its backticks."""
    assert re.fullmatch(r"`[^`]+`", cell), cell
    return cell[1:-1]


@pytest.mark.database_independent
def test_the_table_lists_eight_to_twelve_features() -> None:
    assert 8 <= len(TABLE) <= 12
    assert all(len(row) == 4 for row in TABLE)


@pytest.mark.database_independent
@pytest.mark.parametrize("row", TABLE, ids=[row[0] for row in TABLE])
def test_each_unsupported_feature_fails_with_the_readme_error(row: list[str]) -> None:
    _, example, error, _ = row
    result = run_in_template(TEMPLATE, code(example))
    assert result.outcome is Outcome.ERROR
    assert result.error == code(error)


DECLARATIONS = {
    "int": "int n;",
    "uint": "uint[8] n = 3;",
    "float": "float[64] x;",
    "bool": "bool b = true;",
    "angle": "angle[32] a = pi;",
    "complex": "complex[float[64]] z;",
    "array": "array[int[32], 2] v = {1, 2};",
    "duration": "duration d = 100ns;",
    "stretch": "stretch s;",
}


@pytest.mark.database_independent
def test_every_classical_type_the_table_names_is_refused_by_name() -> None:
    (feature,) = [row[0] for row in TABLE if row[0].startswith("classical variables")]
    assert re.findall(r"`(\w+)`", feature) == list(DECLARATIONS)
    for name, declaration in DECLARATIONS.items():
        expected = f"QASM3ImporterError: line 5, column 0: declarations of type '{name}' are not supported"
        assert run_in_template(TEMPLATE, declaration).error == expected


# What the table's last column offers instead (as the README writes it), each with a circuit that
# uses it and that circuit's seeded counts.
INSTEAD = {
    "`gate flip a { x a; }`": ("gate flip a { x a; } flip q[0];", {"01": 100}),
    "`rx(0.5) q[0];`": ("rx(0.5) q[0];", {"00": 96, "01": 4}),
    "`bit[2] d;`": ("bit[2] d;", {"00 00": 100}),  # d is in every key, leftmost
    "`if (c[0]) …`": ("x q[0]; c[0] = measure q[0]; if (c[0]) { x q[1]; }", {"11": 100}),
    "`if (c[0] == true) …`": ("x q[0]; c[0] = measure q[0]; if (c[0] == true) { x q[1]; }", {"11": 100}),
    "`if (c == 1) …`": ("x q[0]; c = measure q; if (c == 1) { x q[1]; }", {"11": 100}),
    "`h q[0]; h q[1];`": ("h q[0]; h q[1];", {"00": 30, "01": 28, "10": 20, "11": 22}),
    "`if (c == 1) { x q[0]; }`": ("c = measure q; if (c == 1) { x q[0]; }", {"00": 100}),
    "`let a = q[0:0];`": ("let a = q[0:0]; x a;", {"01": 100}),
    "`c[0] = measure q[0];`": ("x q[0]; c[0] = measure q[0];", {"01": 100}),
}


@pytest.mark.database_independent
@pytest.mark.parametrize("offered", list(INSTEAD))
def test_what_the_table_offers_instead_runs(offered: str) -> None:
    assert any(offered in row[3] for row in TABLE)
    example, counts = INSTEAD[offered]
    result = run_in_template(TEMPLATE, example)
    assert result.outcome is Outcome.COUNTS, result.error
    assert result.counts == counts


# "These do work: ...": each phrase of that sentence, with a circuit that shows it working.
WORKS = {
    "`if`/`else` on a bit": ("x q[0]; c[0] = measure q[0]; if (c[0]) { x q[1]; } else { h q[1]; }", {"11": 100}),
    "or a register": ("x q[0]; c = measure q; if (c == 1) { x q[1]; } else { h q[1]; }", {"11": 100}),
    "`while (c[0])`": ("x q[0]; c[0] = measure q[0]; while (c[0]) { x q[0]; c[0] = measure q[0]; }", {"00": 100}),
    "`for` over a range": ("for int i in [0:2] { x q[0]; }", {"01": 100}),
    "(`for int i in {1, 3}`)": ("for int i in {1, 3} { x q[1]; }", {"00": 100}),
    "with `break`": ("for int i in [0:3] { x q[0]; break; }", {"01": 100}),
    "gate definitions with parameters": ("gate turn(t) a { rx(t) a; } turn(pi) q[0];", {"01": 100}),
    "`ctrl @`": ("x q[0]; ctrl @ x q[0], q[1];", {"11": 100}),
    "`inv @`": ("h q[0]; s q[0]; inv @ s q[0]; h q[0];", {"00": 100}),
    "`pow(2) @`": ("pow(2) @ sx q[0];", {"01": 100}),
    "`reset`": ("x q[0]; reset q[0];", {"00": 100}),
    "`gphase`": ("gphase(pi); x q[0];", {"01": 100}),
    "`delay[100ns]` (no effect without noise)": ("x q[0]; delay[100ns] q[0];", {"01": 100}),
    "`let` aliases of registers": ("let a = q; x a[1];", {"10": 100}),
    "and slices": ("let a = q[1:1]; x a;", {"10": 100}),
}


@pytest.mark.database_independent
@pytest.mark.parametrize("phrase", list(WORKS))
def test_what_the_readme_says_works_runs(phrase: str) -> None:
    works = flat(SUPPORT[SUPPORT.index("These do work:") : SUPPORT.index("In OpenQASM 2")])
    assert phrase in works
    example, counts = WORKS[phrase]
    result = run_in_template(TEMPLATE, example)
    assert result.outcome is Outcome.COUNTS, result.error
    assert result.counts == counts


@pytest.mark.database_independent
def test_openqasm2_opaque_gate_fails_with_the_readme_error() -> None:
    shown = re.search(r"`opaque g a;` then `g q\[0\];` fails with\n`([^`]+)`", SUPPORT)
    assert shown is not None
    circuit = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nopaque g a;\nqreg q[1];\ncreg c[1];\ng q[0];\nmeasure q -> c;\n'
    assert executor.execute(SIMULATOR, circuit, 10, 1).error == shown.group(1)


# -- Links ------------------------------------------------------------------------------------


def anchors(text: str) -> set[str]:
    """GitHub's anchors for a Markdown file's headings."""
    headings = re.findall(r"^#+ (.+)$", text, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.database_independent
@pytest.mark.parametrize("path", ["README.md", "docs/performance.md", "docs/operations.md"])
def test_relative_links_point_at_files_and_headings_that_exist(path: str) -> None:
    source = ROOT / path
    text = source.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links
    for link in links:
        if link.startswith(("http://", "https://")):
            continue
        target, _, anchor = link.partition("#")
        file = (source.parent / target).resolve() if target else source
        assert file.exists(), f"{path}: {link}"
        if anchor:
            assert anchor in anchors(file.read_text(encoding="utf-8")), f"{path}: {link}"
