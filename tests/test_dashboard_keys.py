"""The dashboard's sign-in against a service with API keys, in a real headless Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser import ARTIFACTS, assert_no_csp_violations, facts, watch_csp
from tests.services import BELL_QASM3, Cluster, http_client, keys_cli, new_key, running_cluster, submit, wait_done

pytestmark = pytest.mark.local

NO_KEY = "this service needs an API key: send it as the header Authorization: Bearer <key>"
UNKNOWN_KEY = "this API key is not known here; ask the operator for one"
STORAGE_KEY = "qtq-api-key"  # auth.js's sessionStorage item
POLL_MS = 2000  # how often the task list refreshes


@dataclass
class KeyedService:
    cluster: Cluster
    keys: dict[str, str]

    @property
    def url(self) -> str:
        return self.cluster.base_url

    def client(self, name: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[name]}"}
        return http_client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyedService]:
    """One API and one worker whose database has two keys and an admin key."""
    with running_cluster(tmp_path_factory.mktemp("keyed")) as cluster:
        made = [("alice",), ("bob",), ("root", "--admin")]
        keys = {args[0]: new_key(cluster, *args) for args in made}
        yield KeyedService(cluster, keys)


def sign_in(page: Page, key: str) -> None:
    page.fill("#api-key", key)
    page.click("#sign-in-button")
    expect(page.locator("#sign-out")).to_be_visible()  # the page loaded again, with the key
    expect(page.locator("#sign-in")).to_have_count(0)


def storage(page: Page) -> dict[str, Any]:
    """Everything the tab keeps: sessionStorage, localStorage and cookies."""
    kept: dict[str, Any] = page.evaluate(
        "({session: {...sessionStorage}, local: {...localStorage}, cookie: document.cookie})"
    )
    return {**kept, "cookies": page.context.cookies()}


def shown_tasks(page: Page) -> list[str]:
    return [link.get_attribute("title") or "" for link in page.locator("#tasks tbody a.task-link").all()]


def test_a_key_signs_in_for_this_tab_only_and_sees_its_own_tasks_and_usage(page: Page, keyed: KeyedService) -> None:
    console = watch_csp(page)
    with keyed.client("alice") as alice, keyed.client("bob") as bob:
        mine = submit(alice, BELL_QASM3, shots=100, seed=1)
        theirs = submit(bob, BELL_QASM3, seed=2)
        wait_done(alice, mine)
        listed = [task["task_id"] for task in alice.get("/tasks").json()["items"]]
        (usage,) = alice.get("/usage").json()["items"]
    assert mine in listed and theirs not in listed

    page.goto(keyed.url + "/")
    message = page.locator("#sign-in-message")
    expect(message).to_have_text(NO_KEY)
    expect(page.locator("#api-key")).to_have_attribute("type", "password")
    for data in ("#summary", "#submit-form", "#tasks"):
        expect(page.locator(data)).to_be_hidden()
    expect(page.locator("#sign-out")).to_have_count(0)
    # A plain link cannot carry the key: with keys, /metrics is left to Prometheus.
    expect(page.locator('header a[href="/metrics"]')).to_have_count(0)

    page.fill("#api-key", "qtq_✓")  # past Latin-1: no HTTP header can carry it, the browser refuses to send it
    page.click("#sign-in-button")
    expect(message).to_have_text(re.compile(r"^Could not check the key: .+"))
    page.fill("#api-key", "qtq_not-a-key")
    page.click("#sign-in-button")
    expect(message).to_have_text(UNKNOWN_KEY)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "sign-in.png"), full_page=True)
    assert storage(page) == {"session": {}, "local": {}, "cookie": "", "cookies": []}, "a refused key was kept"

    sign_in(page, keyed.keys["alice"])
    expect(page.locator("#tasks tbody a.task-link")).to_have_count(len(listed))
    assert shown_tasks(page) == listed
    expect(page.locator("#owner-heading")).to_be_hidden()
    expect(page.locator("#summary .card")).to_have_count(5)
    assert storage(page) == {"session": {STORAGE_KEY: keyed.keys["alice"]}, "local": {}, "cookie": "", "cookies": []}

    # The key's usage, today and in total, as GET /usage says.
    row = page.locator("#usage tbody tr")
    expect(row).to_have_count(1)
    cells = row.locator("td")
    expect(cells).to_have_count(7)
    assert cells.nth(0).text_content() == "alice"
    for first, figures in ((1, usage["today"]), (4, usage["total"])):
        assert cells.nth(first).text_content() == f"{figures['tasks_submitted']:,}"
        assert cells.nth(first + 1).text_content() == f"{figures['shots']:,}"
        assert cells.nth(first + 2).get_attribute("title") == f"{figures['simulation_seconds']} s"
    assert usage["today"]["shots"] >= 100

    page.reload()  # the tab keeps its session
    expect(page.locator("#tasks tbody a.task-link")).to_have_count(len(listed))
    expect(page.locator("#sign-in")).to_have_count(0)
    other_tab = page.context.new_page()  # another tab has its own sessionStorage: it asks again
    other_tab.goto(keyed.url + "/")
    expect(other_tab.locator("#sign-in-message")).to_have_text(NO_KEY)
    other_tab.close()

    page.goto(f"{keyed.url}/ui/tasks/{mine}")
    expect(page.locator("#status")).to_have_attribute("data-status", "completed")
    assert "Owner" not in facts(page)  # a key's own task: no owner to show
    page.goto(f"{keyed.url}/ui/tasks/{theirs}")
    expect(page.locator("#status")).to_have_text("Task not found")

    page.click("#sign-out")
    expect(message).to_have_text(NO_KEY)
    expect(page.locator("#status")).to_be_hidden()
    assert storage(page)["session"] == {}
    assert_no_csp_violations(page, console)


def test_an_admin_key_sees_every_key_with_its_owner(page: Page, keyed: KeyedService) -> None:
    with keyed.client("alice") as alice, keyed.client("bob") as bob, keyed.client("root") as root:
        alices = submit(alice, BELL_QASM3, seed=3)
        bobs = submit(bob, BELL_QASM3, seed=4)
        batch = bob.post("/batches", json={"tasks": [{"circuit": BELL_QASM3}]}).json()
        owners = [item["owner"] for item in root.get("/usage").json()["items"]]
    assert {"alice", "bob"} <= set(owners)

    page.goto(keyed.url + "/")
    sign_in(page, keyed.keys["root"])
    expect(page.locator("#owner-heading")).to_be_visible()
    for task_id, owner in ((alices, "alice"), (bobs, "bob")):
        row = page.locator("#tasks tbody tr").filter(has=page.locator(f'a[title="{task_id}"]'))
        expect(row.locator("td").nth(1)).to_have_text(owner)
    expect(page.locator("#tasks tbody tr").first.locator("td")).to_have_count(9)
    # Every key's usage, a row each.
    expect(page.locator("#usage tbody tr td:first-child")).to_have_text(owners)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "task-list-admin.png"), full_page=True)

    page.goto(f"{keyed.url}/ui/tasks/{bobs}")
    expect(page.locator("#status")).to_have_attribute("data-status", "completed")
    assert facts(page)["Owner"] == "bob"
    page.goto(f"{keyed.url}/ui/batches/{batch['batch_id']}")
    expect(page.locator("#batch-status")).to_have_attribute("data-done", "true")
    assert facts(page)["Owner"] == "bob"


def test_the_task_and_batch_pages_ask_for_the_key_and_submitting_uses_it(page: Page, keyed: KeyedService) -> None:
    with keyed.client("bob") as bob:
        batch = bob.post("/batches", json={"tasks": [{"circuit": BELL_QASM3, "seed": 5}]}).json()
    page.goto(f"{keyed.url}/ui/batches/{batch['batch_id']}")
    expect(page.locator("#sign-in-message")).to_have_text(NO_KEY)
    expect(page.locator("#progress")).to_be_hidden()
    sign_in(page, keyed.keys["bob"])
    expect(page.locator("#batch-status")).to_have_attribute("data-done", "true")
    assert "Owner" not in facts(page)
    task_id = batch["task_ids"][0]
    page.locator("#batch-tasks a.task-link").click()
    page.wait_for_url(f"**/ui/tasks/{task_id}")
    expect(page.locator("#status")).to_have_attribute("data-status", "completed")

    page.click("#sign-out")
    expect(page.locator("#sign-in-message")).to_have_text(NO_KEY)
    sign_in(page, keyed.keys["bob"])  # the task page loads again with the key
    expect(page.locator("#status")).to_have_attribute("data-status", "completed")

    page.goto(keyed.url + "/")  # the submit form sends the key: the task is bob's
    page.fill("#seed", "6")
    page.click("#submit-button")
    page.wait_for_url("**/ui/tasks/*")
    submitted = page.url.rsplit("/", 1)[1]
    expect(page.locator("#status")).to_have_attribute("data-status", "completed", timeout=30_000)
    with keyed.client("bob") as bob, keyed.client("alice") as alice:
        assert wait_done(bob, submitted)["status"] == "completed"
        assert alice.get(f"/tasks/{submitted}").status_code == 404


def test_a_revoked_key_is_refused_at_the_next_refresh(page: Page, keyed: KeyedService) -> None:
    key = new_key(keyed.cluster, "carol")
    page.goto(keyed.url + "/")
    sign_in(page, key)
    expect(page.locator("#usage tbody tr td").first).to_have_text("carol")
    assert keys_cli(keyed.cluster, "revoke", "carol").returncode == 0
    message = page.locator("#sign-in-message")
    expect(message).to_have_text("the API key 'carol' has been revoked", timeout=3 * POLL_MS)
    expect(page.locator("#tasks")).to_be_hidden()
    expect(page.locator("#sign-out")).to_have_count(0)
    assert storage(page)["session"] == {}, "the revoked key was kept"
    page.click("#sign-in-button")
    expect(message).to_have_text("Enter your API key.")
    page.fill("#api-key", key)  # the refusal stays a refusal
    page.click("#sign-in-button")
    expect(message).to_have_text("the API key 'carol' has been revoked")
    assert storage(page)["session"] == {}
