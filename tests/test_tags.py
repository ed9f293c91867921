"""In-process: tags on submissions, on the task and in lists, and the tag filter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shared.examples import BELL_QASM3
from tests.services import app_client

pytestmark = pytest.mark.database_independent


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with app_client(tmp_path) as client:
        yield client


def submit(client: TestClient, **tags: str) -> str:
    response = client.post("/tasks", json={"circuit": BELL_QASM3, "tags": tags})
    assert response.status_code == 202, response.text
    return response.json()["task_id"]


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ({"": "x"}, "tags: the key '': String should match pattern"),
        ({"k" * 65: "x"}, f"tags: the key '{'k' * 65}': String should match pattern"),
        ({"a b": "x"}, "tags: the key 'a b': String should match pattern"),
        ({"k": "v" * 257}, "tags.k: String should have at most 256 characters"),
        ({"k": 7}, "tags.k: Input should be a valid string"),
        ({"k": "a\u0000b"}, "tags.k: String should match pattern"),
        ({f"k{n}": "v" for n in range(17)}, "tags: Dictionary should have at most 16 items"),
    ],
)
def test_malformed_tags_are_422_naming_the_field(client: TestClient, tags: dict, message: str) -> None:
    response = client.post("/tasks", json={"circuit": BELL_QASM3, "tags": tags})
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"].startswith(message), response.json()


def test_tags_show_on_the_task_and_in_lists_and_filter_them(client: TestClient) -> None:
    first = submit(client, project="vqe-h2", run="1", **{"ns:group": "a:b"})
    submit(client, project="qaoa", run="1")
    third = submit(client, project="vqe-h2", run="2")
    assert client.get(f"/tasks/{first}").json()["tags"] == {"project": "vqe-h2", "run": "1", "ns:group": "a:b"}
    listed = client.get("/tasks", params={"tag": "project:vqe-h2"}).json()["items"]
    assert [item["task_id"] for item in listed] == [third, first]
    assert listed[0]["tags"] == {"project": "vqe-h2", "run": "2"}
    both = client.get("/tasks", params=[("tag", "project:vqe-h2"), ("tag", "run:1")]).json()["items"]
    assert [item["task_id"] for item in both] == [first]
    assert [i["task_id"] for i in client.get("/tasks", params={"tag": "ns:group:a:b"}).json()["items"]] == []
    page = client.get("/tasks", params={"tag": "project:vqe-h2", "limit": 1}).json()
    rest = client.get("/tasks", params={"tag": "project:vqe-h2", "limit": 1, "cursor": page["next_cursor"]}).json()
    assert [page["items"][0]["task_id"], rest["items"][0]["task_id"]] == [third, first] and "next_cursor" not in rest


@pytest.mark.parametrize("tag", ["no-colon", ":value", "a b:c"])
def test_a_malformed_tag_filter_is_a_422(client: TestClient, tag: str) -> None:
    response = client.get("/tasks", params={"tag": tag})
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"].startswith("tag.0: String should match pattern")
