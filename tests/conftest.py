"""The suite runs against processes it starts itself, or against TEST_BASE_URL when that is set."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.services import Cluster, assert_clean_logs

EXTERNAL_URL = os.environ.get("TEST_BASE_URL", "").rstrip("/")


@pytest.fixture(scope="session")
def session_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster | None]:
    """The shared service: one API and two workers on a fresh database, unless TEST_BASE_URL is set."""
    if EXTERNAL_URL:
        yield None
        return
    cluster = Cluster(tmp_path_factory.mktemp("session"))
    cluster.start_api()
    cluster.start_worker()
    cluster.start_worker()
    yield cluster
    codes = cluster.stop()
    assert all(code == 0 for code in codes.values()), f"a service exited badly: {codes}"
    for service in cluster.all_services():
        assert_clean_logs(service)


@pytest.fixture(scope="session")
def base_url(session_cluster: Cluster | None) -> str:
    return session_cluster.base_url if session_cluster is not None else EXTERNAL_URL


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as c:
        yield c


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[type]:
    """Private clusters for tests that kill, stop or reconfigure processes; always local."""
    made: list[Cluster] = []

    def factory(**settings: object) -> Cluster:
        cluster = Cluster(tmp_path / f"cluster{len(made)}", **settings)
        cluster.workdir.mkdir()
        made.append(cluster)
        return cluster

    yield factory  # type: ignore[misc]
    for cluster in made:
        cluster.stop()
