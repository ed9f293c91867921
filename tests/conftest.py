"""The suite runs against processes it starts itself, or against TEST_BASE_URL when that is set."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from harness import databases
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.services import Cluster, assert_clean_logs, http_client, running_cluster

EXTERNAL_URL = os.environ.get("TEST_BASE_URL", "").rstrip("/")


@pytest.fixture(scope="session")
def session_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster | None]:
    """The shared service: one API and two workers on a fresh database, unless TEST_BASE_URL is set."""
    if EXTERNAL_URL:
        yield None
        return
    with running_cluster(tmp_path_factory.mktemp("session"), workers=2) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def base_url(session_cluster: Cluster | None) -> str:
    return session_cluster.base_url if session_cluster is not None else EXTERNAL_URL


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with http_client(base_url=base_url, timeout=30) as c:
        yield c


@pytest.fixture
def fresh_database(tmp_path: Path) -> Iterator[databases.FreshDatabase]:
    """A fresh database of the session's backend, dropped after the test."""
    made = databases.FreshDatabase(tmp_path)
    try:
        yield made
    finally:
        made.drop()


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[type]:
    """Private clusters for tests that kill, stop or reconfigure processes; always local."""
    made: list[Cluster] = []

    def factory(**settings: Any) -> Cluster:
        cluster = Cluster(tmp_path / f"cluster{len(made)}", **settings)
        cluster.workdir.mkdir()
        made.append(cluster)
        return cluster

    yield factory  # type: ignore[misc]
    for cluster in made:
        cluster.drop()
    # Whatever a test did to them, no process may have logged a traceback or a parser panic.
    for cluster in made:
        for service in cluster.started:  # an API started again after a kill: both its lives
            assert_clean_logs(service)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium, one per test module."""
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: `make test` installs it with apt-get"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The browser tests' service: one API and one worker, for the test module."""
    with running_cluster(tmp_path_factory.mktemp("dashboard")) as cluster:
        yield cluster


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser tab; the test fails if a script on the page threw."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="database the services under test use; postgres needs TEST_DATABASE_URL",
    )


def pytest_configure(config: pytest.Config) -> None:
    databases.BACKEND = config.getoption("backend")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests about one backend's own mechanics run only in that backend's session, and tests that never
    touch the backend run only in the first (SQLite) session: deselected, not skipped."""
    backend = config.getoption("backend")
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        only = {m.args[0] for m in item.iter_markers("backend_only")}
        independent = backend != "sqlite" and item.get_closest_marker("database_independent") is not None
        (drop if (only and backend not in only) or independent else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    # The files that kill and restart processes are the longest, then the other files that start
    # processes of their own: the parallel run (`make test` hands out whole files in this order,
    # --no-loadscope-reorder) starts them first, so that none is left to run alone at the end while
    # the other test processes sit idle. A file's tests keep their order.
    rank: dict[Path, int] = {}
    for item in keep:
        own = 0 if item.get_closest_marker("crash") else 1 if item.get_closest_marker("local") else 2
        rank[item.path] = min(rank.get(item.path, own), own)
    items[:] = sorted(keep, key=lambda item: rank[item.path])
