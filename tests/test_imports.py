"""Imports flow one way (api_server -> shared <- worker) and never in a circle, deferred imports included;
the client (client/qtq) talks HTTP only and imports nothing from the service."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.database_independent

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("api_server", "worker", "shared")


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _imported(path: Path) -> set[str]:
    """Every module this file imports anywhere in it, inside functions too."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from shared import rows` imports shared.rows; `from shared.store import Store` imports shared.store
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
            found.add(node.module)
    return found


def _imports(path: Path) -> set[str]:
    """First-party modules this file imports anywhere in it, inside functions too."""
    return {name for name in _imported(path) if name.split(".")[0] in PACKAGES}


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for package in PACKAGES for p in (ROOT / package).glob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_no_import_circles() -> None:
    graph = _graph()
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            raise AssertionError("import circle: " + " -> ".join([*path[path.index(name) :], name]))
        if name in done:
            return
        for target in sorted(graph[name]):
            visit(target, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_shared_imports_neither_the_api_nor_the_worker() -> None:
    outward = {
        (name, target)
        for name, targets in _graph().items()
        if name.startswith("shared.")
        for target in targets
        if not target.startswith("shared.")
    }
    assert outward == set()


def test_only_the_workers_circuit_modules_import_qiskit() -> None:
    """As the README says: Qiskit (and Aer) are imported by the worker's circuit modules and no other."""
    importers = set()
    for package in PACKAGES:
        for path in (ROOT / package).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                if any(name.split(".")[0] in ("qiskit", "qiskit_aer") for name in names):
                    importers.add(_module_name(path))
    assert importers == {
        "worker.parsing",
        "worker.executor",
        "worker.program",
        "worker.keys",
        "worker.sampling",
        "worker.circuit_cache",
    }
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    modules = (
        "`worker/parsing.py`, `worker/executor.py`, `worker/program.py`, `worker/keys.py`, `worker/sampling.py`, "
        "`worker/circuit_cache.py`"
    )
    assert f"({modules})" in readme


def test_the_client_imports_nothing_from_the_service() -> None:
    """client/ is its own package: no module of it imports the service's code, the harness or the tests."""
    service = {*PACKAGES, "harness", "tests", "bench"}
    found = {
        (str(path.relative_to(ROOT)), name)
        for path in (ROOT / "client").rglob("*.py")
        for name in _imported(path)
        if name.split(".")[0] in service
    }
    assert found == set()


def test_importing_the_client_and_its_command_loads_neither_qiskit_nor_the_service() -> None:
    """`pip install ./client` brings httpx and tqdm only: Qiskit is imported when a QuantumCircuit is given."""
    check = (
        "import sys, qtq, qtq.cli; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'qiskit', 'api_server', 'worker', 'shared'}))"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd="/", timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"


def test_the_qiskit_extra_needs_qiskit_alone() -> None:
    """`qtq.qiskit` (the [qiskit] extra) imports Qiskit but never Aer, which the extra does not install."""
    check = (
        "import sys, qtq.qiskit; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'qiskit', 'qiskit_aer', 'api_server', 'worker'}))"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd="/", timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "['qiskit']\n"


def test_the_worker_and_the_command_line_tools_load_no_web_framework() -> None:
    """The worker, the key command and the backup command start without FastAPI, Starlette or uvicorn
    (the key command took 0.4 s to start when it did), and the worker's parent without Qiskit or NumPy.
    The API's entry point imports the web application only once the settings are read, so a bad
    setting stops it in a third of the time."""
    check = (
        "import sys, api_server.keys, api_server.main, shared.backup, worker.main, worker.worker; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'fastapi', 'starlette', 'uvicorn', 'limits', 'qiskit', 'qiskit_aer', 'numpy'}))"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"
