"""In-process: malformed sweep, observable, memory, method and noise fields are 422s naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shared.examples import BELL_QASM3
from tests.services import app_client

pytestmark = pytest.mark.database_independent


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with app_client(tmp_path) as client:
        yield client


def refused(client: TestClient, **fields: Any) -> str:
    response = client.post("/tasks", json={"circuit": BELL_QASM3, **fields})
    assert response.status_code == 422, response.text
    (first, *_) = response.json()["detail"]
    return first["msg"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"parameters": {"theta": [1, 2], "phi": [1, 2, 3]}}, "parameters: every array must have the same length"),
        ({"parameters": {"theta": []}}, "parameters.theta"),
        ({"parameters": {"theta": "pi"}}, "parameters.theta"),
        ({"parameters": {"2theta": 1}}, "parameters: the key '2theta': String should match pattern"),
        ({"parameters": [1, 2]}, "parameters: Input should be a valid dictionary"),
        ({"observables": []}, "observables: List should have at least 1 item"),
        ({"observables": ["ZQ"]}, "observables.0"),
        ({"observables": ["zz"]}, "observables.0"),
        ({"observables": [[["ZZ", 1.0], ["X", 0.5]]]}, "observables: observable 0: every term must have the same"),
        ({"observables": [[["ZZ"]]]}, "observables.0"),
        ({"memory": "yes"}, "memory: Input should be a valid boolean"),
        ({"method": "tensor"}, "method: Input should be 'automatic', 'statevector', 'density_matrix', 'stabilizer'"),
        ({"noise": {"depolarizing_1q": 1.5}}, "noise.depolarizing_1q: Input should be less than or equal to 1"),
        ({"noise": {"readout": {"p01": -0.1}}}, "noise.readout.p01: Input should be greater than or equal to 0"),
        ({"noise": {"amplitude_damping": 0.1}}, "noise.amplitude_damping: unknown field"),
    ],
)
def test_malformed_options_are_422_naming_the_field(client: TestClient, fields: dict, message: str) -> None:
    assert refused(client, **fields).startswith(message)


def test_the_limits_are_the_apps_own_settings(tmp_path: Path) -> None:
    with app_client(tmp_path, max_sweep_points=3, max_observables=2, max_memory_shots=100) as client:
        assert refused(client, parameters={"theta": [0, 1, 2, 3]}) == (
            "parameters: a sweep of 4 points is more than MAX_SWEEP_POINTS=3"
        )
        assert refused(client, observables=["ZZ", "XX", "ZI"]) == (
            "observables: 3 observables are more than MAX_OBSERVABLES=2"
        )
        assert refused(client, shots=40, memory=True, parameters={"theta": [0, 1, 2]}) == (
            "memory: 40 shots x 3 points = 120 outcomes is more than MAX_MEMORY_SHOTS=100; "
            "ask for fewer shots or points"
        )
        accepted = client.post("/tasks", json={"circuit": BELL_QASM3, "shots": 30, "memory": True})
        assert accepted.status_code == 202


def test_a_task_echoes_its_options_and_nothing_it_was_not_given(client: TestClient) -> None:
    options = {
        "parameters": {"theta": [0.5, 1.5], "phi": 0.25},
        "observables": ["ZZ", [["XX", 0.5]]],
        "memory": True,
        "method": "density_matrix",
        "noise": {"readout": {"p01": 0.1}},
    }
    task_id = client.post("/tasks", json={"circuit": BELL_QASM3, "shots": 10, **options}).json()["task_id"]
    view = client.get(f"/tasks/{task_id}").json()
    assert {key: view[key] for key in options} == options  # memory is `true` until the outcomes exist
    plain = client.post("/tasks", json={"circuit": BELL_QASM3}).json()["task_id"]
    view = client.get(f"/tasks/{plain}").json()
    assert not set(options) & set(view)
