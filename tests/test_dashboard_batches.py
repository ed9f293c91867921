"""The dashboard's batch page and tag filter in a real headless Chromium, against real services."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from playwright.sync_api import Page, expect

from tests.browser import ARTIFACTS, assert_no_csp_violations, facts, shown_time, watch_csp
from tests.services import BELL_QASM3, Cluster, slow_circuit, submit, wait_for

pytestmark = pytest.mark.local

BATCH_PAGE_SIZE = 20  # the batch page's page of tasks
LIST_PAGE_SIZE = 50  # the task list's
BROKEN = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[1] q;\nh q[0]\nx q[0];\n'  # a missing `;`
XSS = "<img src=x onerror=window.hacked=1>"


def submit_batch(cluster: Cluster, tasks: list[dict[str, Any]], **tags: str) -> dict[str, Any]:
    with cluster.client() as client:
        response = client.post("/batches", json={"tasks": tasks, "tags": tags})
    assert response.status_code == 202, response.text
    return response.json()


def segments(page: Page) -> dict[str, int]:
    """The progress bar's segments, state -> count, left to right."""
    bar = page.locator("#progress svg rect.segment")
    return {rect.get_attribute("data-state") or "": int(rect.get_attribute("data-count") or 0) for rect in bar.all()}


def widths(page: Page) -> dict[str, float]:
    bar = page.locator("#progress svg rect.segment")
    return {rect.get_attribute("data-state") or "": float(rect.get_attribute("width") or 0) for rect in bar.all()}


def row_titles(page: Page, table: str) -> list[str]:
    return [link.get_attribute("title") or "" for link in page.locator(f"{table} tbody a.task-link").all()]


def test_a_batch_page_follows_its_progress_to_done_and_pages_its_tasks(page: Page, make_cluster: type) -> None:
    console = watch_csp(page)
    cluster: Cluster = make_cluster()
    cluster.start_api()  # no worker yet: the page opens on a batch that has not started
    tasks: list[dict[str, Any]] = [
        {"circuit": BROKEN if i in (7, 19) else BELL_QASM3, "shots": i + 1, "seed": 1, "tags": {"index": str(i)}}
        for i in range(30)
    ]
    batch = submit_batch(cluster, tasks, study="dashboard", note=XSS)
    task_ids: list[str] = batch["task_ids"]
    page.goto(f"{cluster.base_url}/ui/batches/{batch['batch_id']}")
    status = page.locator("#batch-status")
    expect(status).to_have_attribute("data-done", "false")
    expect(status).to_have_text("running · 0 of 30 tasks finished")
    assert segments(page) == {"submitted": 30}
    cancel = page.locator("#cancel-button")
    expect(cancel).to_be_enabled()
    expect(page.locator("#progress .legend li")).to_have_text(
        ["completed 0", "failed 0", "cancelled 0", "pending 0", "submitted 30"]
    )

    # The API goes away and comes back (a restart): the batch page and a task's page say that the
    # service cannot be reached, with no script error, and go on following the batch.
    task_page = page.context.new_page()
    task_page_errors: list[str] = []
    task_page.on("pageerror", lambda error: task_page_errors.append(str(error)))
    task_page.goto(f"{cluster.base_url}/ui/tasks/{task_ids[0]}")
    task_status = task_page.locator("#status")
    expect(task_status).to_have_attribute("data-status", "submitted")
    assert cluster.api is not None
    cluster.api.kill()
    expect(page.locator("#batch-error")).to_have_text(re.compile(r"^Could not reach the service: "))
    expect(task_status).to_have_text(re.compile(r"^Could not reach the service: "))
    cluster.start_api()
    expect(page.locator("#batch-error")).to_be_hidden()
    expect(task_status).to_have_text("submitted")

    cluster.start_worker()  # the page follows the batch to its end without a reload
    expect(status).to_have_attribute("data-done", "true", timeout=60_000)
    expect(task_status).to_have_attribute("data-status", "completed")
    task_page.close()
    assert not task_page_errors, task_page_errors
    expect(status).to_have_text("done · 30 of 30 tasks finished")
    assert segments(page) == {"completed": 28, "failed": 2}  # finished states first, from the left
    assert widths(page) == pytest.approx({"completed": 1000 * 28 / 30, "failed": 1000 * 2 / 30}, abs=0.01)
    expect(page.locator("#progress .legend li")).to_have_text(
        ["completed 28", "failed 2", "cancelled 0", "pending 0", "submitted 0"]
    )
    expect(cancel).to_be_disabled()
    with cluster.client() as client:
        view = client.get(f"/batches/{batch['batch_id']}").json()
    shown = facts(page)
    assert shown == {
        "Tasks": "30",
        "Submitted": shown_time(view["created_at"]),
        "Finished": shown_time(view["finished_at"]),
        "Tags": f"study:dashboardnote:{XSS}",
    }
    expect(page.locator("#facts .tag")).to_have_text(["study:dashboard", f"note:{XSS}"])
    assert page.locator("img").count() == 0 and page.evaluate("window.hacked") is None

    # The tasks in request order, a page at a time, and back.
    info = page.locator("#page-info")
    previous, following = page.locator("#previous-button"), page.locator("#next-button")
    rows = page.locator("#batch-tasks tbody tr")
    expect(info).to_have_text(f"Tasks 1–{BATCH_PAGE_SIZE} of 30, in request order")
    expect(rows).to_have_count(BATCH_PAGE_SIZE)
    assert row_titles(page, "#batch-tasks") == task_ids[:BATCH_PAGE_SIZE]
    expect(previous).to_be_disabled()
    first = rows.nth(0).locator("td")
    assert [first.nth(i).text_content() for i in (0, 2, 3)] == ["1", "completed", "1"]
    assert (first.nth(6).text_content() or "") in ("00: 1", "11: 1")  # one shot: one outcome
    broken = rows.nth(7).locator("td")
    expect(broken.nth(2)).to_have_text("failed")
    expect(broken.nth(6)).to_contain_text("QASM3ParsingError: ")
    following.click()
    expect(info).to_have_text(f"Tasks {BATCH_PAGE_SIZE + 1}–30 of 30, in request order")
    expect(rows).to_have_count(30 - BATCH_PAGE_SIZE)
    assert row_titles(page, "#batch-tasks") == task_ids[BATCH_PAGE_SIZE:]
    expect(rows.nth(0).locator("td").nth(0)).to_have_text(str(BATCH_PAGE_SIZE + 1))
    expect(following).to_be_disabled()
    previous.click()
    expect(info).to_have_text(f"Tasks 1–{BATCH_PAGE_SIZE} of 30, in request order")
    assert row_titles(page, "#batch-tasks") == task_ids[:BATCH_PAGE_SIZE]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "batch-page.png"), full_page=True)

    # A task's page links back to its batch and shows its own tags.
    rows.nth(7).locator("a.task-link").click()
    page.wait_for_url(f"**/ui/tasks/{task_ids[7]}")
    expect(page.locator("#status")).to_have_attribute("data-status", "failed")
    assert facts(page)["Tags"] == "index:7"
    batch_link = page.locator("#facts a.batch-link")
    expect(batch_link).to_have_text(batch["batch_id"][:8])
    batch_link.click()
    page.wait_for_url(f"**/ui/batches/{batch['batch_id']}")
    expect(page.locator("#batch-status")).to_have_attribute("data-done", "true")

    # The task list reaches the batch too: each of its tasks links to it.
    page.goto(cluster.base_url + "/")
    newest = page.locator("#tasks tbody tr").first
    expect(newest.locator("a.task-link")).to_have_attribute("title", task_ids[-1])
    newest.locator("a.batch-link").click()
    page.wait_for_url(f"**/ui/batches/{batch['batch_id']}")
    expect(page.locator("#batch-id")).to_have_text(batch["batch_id"])
    assert_no_csp_violations(page, console)


def test_cancel_a_running_batch_from_its_page(page: Page, dashboard: Cluster) -> None:
    # Each task keeps the only worker busy for seconds: the batch cannot finish before the click.
    batch = submit_batch(dashboard, [{"circuit": slow_circuit(60_000), "shots": 10}] * 4)
    batch_id = batch["batch_id"]
    with dashboard.client() as client:
        wait_for(lambda: client.get(f"/batches/{batch_id}").json()["states"].get("pending") == 1, 30, "one to run")
    page.goto(f"{dashboard.base_url}/ui/batches/{batch_id}")
    expect(page.locator("#batch-status")).to_have_attribute("data-done", "false")
    assert segments(page) == {"pending": 1, "submitted": 3}
    page.click("#cancel-button")
    # The waiting three at once; the running one within about a second, by its worker.
    expect(page.locator("#batch-status")).to_have_attribute("data-done", "true", timeout=30_000)
    assert segments(page) == {"cancelled": 4}
    expect(page.locator("#cancel-button")).to_be_disabled()
    expect(page.locator("#batch-tasks tbody td:nth-child(3)")).to_have_text(["cancelled"] * 4)
    with dashboard.client() as client:
        assert client.get(f"/batches/{batch_id}").json()["states"] == {"cancelled": 4}


def test_an_unknown_batch_page_says_not_found(page: Page, dashboard: Cluster) -> None:
    page.goto(f"{dashboard.base_url}/ui/batches/no-such-batch")
    expect(page.locator("#batch-status")).to_have_text("Batch not found")
    expect(page.locator("#tasks-section")).to_be_hidden()


def filters_in_url(page: Page) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(page.url).query)


def test_the_tag_filter_lists_only_matching_tasks_pages_and_lives_in_the_url(page: Page, make_cluster: type) -> None:
    cluster: Cluster = make_cluster()
    cluster.start_api()  # no worker: the list holds still
    with cluster.client() as client:
        alpha = [submit(client, BELL_QASM3, tags={"project": "alpha", "run": str(i % 2)}) for i in range(53)]
        beta = [submit(client, BELL_QASM3, tags={"project": "beta", "run": "1"}) for _ in range(3)]
        untagged = submit(client, BELL_QASM3)
    page.goto(cluster.base_url + "/")
    links = page.locator("#tasks tbody a.task-link")
    expect(links.first).to_have_attribute("title", untagged)

    page.fill("#tag-input", "project:alpha")
    page.click("#tag-button")  # Enter works too: it is a form
    expect(page.locator("#tag-filters li code")).to_have_text(["project:alpha"])
    expect(page.locator("#page-info")).to_have_text(f"Tasks 1–{LIST_PAGE_SIZE}, newest first")
    # The unfiltered first page says the same: wait for the filtered rows themselves.
    expect(links.first).to_have_attribute("title", alpha[-1])
    assert filters_in_url(page) == [("tag", "project:alpha")]
    first_page = row_titles(page, "#tasks")
    page.click("#older-button")  # paging keeps the filter
    expect(page.locator("#page-info")).to_have_text(f"Tasks {LIST_PAGE_SIZE + 1}–53, newest first")
    assert first_page + row_titles(page, "#tasks") == alpha[::-1]
    expect(page.locator("#older-button")).to_be_disabled()

    page.fill("#tag-input", "run:1")
    page.press("#tag-input", "Enter")  # a second filter: a task must carry both
    expect(page.locator("#tag-filters li code")).to_have_text(["project:alpha", "run:1"])
    expect(links).to_have_count(26)
    assert row_titles(page, "#tasks") == alpha[1::2][::-1]
    assert filters_in_url(page) == [("tag", "project:alpha"), ("tag", "run:1")]
    expect(page.locator("#tasks tbody tr").first.locator("a.tag")).to_have_text(["project:alpha", "run:1"])

    # Input that is no filter says why, and leaves the list and the URL as they were.
    for typed, message in [
        ("alpha", 'A tag filter is key:value, e.g. project:vqe-h2; "alpha" has no colon.'),
        ("a b:c", '"a b" is not a tag key: 1 to 64 letters, digits, _ . or -.'),
        (":value", '"" is not a tag key: 1 to 64 letters, digits, _ . or -.'),
    ]:
        page.fill("#tag-input", typed)
        page.click("#tag-button")
        expect(page.locator("#tag-error")).to_have_text(message)
        expect(links).to_have_count(26)
        assert filters_in_url(page) == [("tag", "project:alpha"), ("tag", "run:1")]

    # A reload (or the URL shared) shows the same filtered list; a state filter joins them there.
    page.select_option("#state-filter", "submitted")
    assert filters_in_url(page) == [("status", "submitted"), ("tag", "project:alpha"), ("tag", "run:1")]
    page.reload()
    expect(page.locator("#tag-filters li code")).to_have_text(["project:alpha", "run:1"])
    expect(page.locator("#state-filter")).to_have_value("submitted")
    expect(links).to_have_count(26)
    expect(page.locator("#tag-error")).to_have_text("")

    page.get_by_role("button", name="Remove the filter project:alpha").click()
    expect(page.locator("#tag-filters li code")).to_have_text(["run:1"])
    expect(links).to_have_count(29)
    assert set(row_titles(page, "#tasks")) == set(alpha[1::2] + beta)
    assert filters_in_url(page) == [("status", "submitted"), ("tag", "run:1")]

    # A tag in the list is a link to the tasks that carry it.
    page.locator("#tasks tbody tr").first.get_by_role("link", name="project:beta").click()
    expect(page.locator("#tag-filters li code")).to_have_text(["project:beta"])
    expect(links).to_have_count(3)
    assert row_titles(page, "#tasks") == beta[::-1]

    # A URL with a filter that cannot be one: it is left out, with the reason, not a broken page.
    page.goto(cluster.base_url + "/?tag=nocolon&tag=project:beta")
    expect(page.locator("#tag-error")).to_have_text(
        'Left out of the filter: A tag filter is key:value, e.g. project:vqe-h2; "nocolon" has no colon.'
    )
    expect(page.locator("#tag-filters li code")).to_have_text(["project:beta"])
    expect(links).to_have_count(3)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "task-list-tag-filter.png"), full_page=True)


def test_tags_are_shown_as_text_never_as_html(page: Page, dashboard: Cluster) -> None:
    console = watch_csp(page)
    tags = {"xss": XSS, "quote": '"><script>window.hacked=2</script>'}
    with dashboard.client() as client:
        task_id = submit(client, BELL_QASM3, tags=tags)
    page.goto(dashboard.base_url + "/")
    page.fill("#tag-input", f"xss:{XSS}")
    page.click("#tag-button")
    expect(page.locator("#tag-filters li code")).to_have_text([f"xss:{XSS}"])
    row = page.locator("#tasks tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("a.task-link")).to_have_attribute("title", task_id)
    expect(row.locator("a.tag")).to_have_text([f"xss:{XSS}", f"quote:{tags['quote']}"])
    page.reload()  # the filter came back from the URL, as text too
    expect(page.locator("#tag-filters li code")).to_have_text([f"xss:{XSS}"])
    expect(row).to_have_count(1)
    assert page.locator("img, script:not([src])").count() == 0, "a tag was rendered as HTML"
    page.goto(f"{dashboard.base_url}/ui/tasks/{task_id}")
    expect(page.locator("#facts a.tag")).to_have_text([f"xss:{XSS}", f"quote:{tags['quote']}"])
    assert page.locator("img").count() == 0, "a tag was rendered as HTML"
    assert page.evaluate("window.hacked") is None
    assert_no_csp_violations(page, console)
