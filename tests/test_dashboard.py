"""The dashboard in a real headless Chromium (Debian's package, driven by Playwright)."""

from __future__ import annotations

import functools
import json
import math
import re
import threading
import uuid
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser import (
    ARTIFACTS,
    ISO_UTC,
    RECORD_CSP_VIOLATIONS,
    assert_no_csp_violations,
    facts,
    shown_time,
    watch_csp,
)
from tests.services import (
    BELL_QASM3,
    Cluster,
    slow_circuit,
    submit,
    wait_done,
    wait_for,
)

pytestmark = pytest.mark.local

# What the dashboard shows: durations in units a reader can take in.
DURATION = re.compile(r"^(\d+ µs|\d+(\.\d)? ms|\d+\.\d s|\d+ min \d+ s|\d+ h \d+ min)$")
VALUE_LABEL = re.compile(r"^(?P<count>\d{1,3}(,\d{3})*) · (?P<percent>[\d.]+)%$")
PAGE_SIZE = 50  # the dashboard's page of tasks
TOP_OUTCOMES = 16  # bars the chart gives to single outcomes before summing the rest


def hadamards(qubits: int) -> str:
    """Every qubit in superposition: all 2**qubits outcomes equally likely."""
    gates = "".join(f"h q[{i}];\n" for i in range(qubits))
    return f'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[{qubits}] q;\nbit[{qubits}] c;\n{gates}c = measure q;\n'


def bar_values(page: Page) -> list[tuple[int, float]]:
    """(count, percent) as each bar's value label reads."""
    values = []
    for text in page.locator("#histogram svg text.bar-value").all_text_contents():
        match = VALUE_LABEL.match(text)
        assert match, f"value label {text!r} is not `count · percent%`"
        values.append((int(match["count"].replace(",", "")), float(match["percent"])))
    return values


def test_submit_the_prefilled_bell_circuit_and_see_its_histogram(page: Page, dashboard: Cluster) -> None:
    page.goto(dashboard.base_url + "/")
    expect(page.locator("#circuit")).to_have_value(BELL_QASM3)
    expect(page.locator("#summary .card")).to_have_count(5)
    page.fill("#seed", "7")
    page.click("#submit-button")
    page.wait_for_url("**/ui/tasks/*")
    expect(page.locator("#status")).to_have_attribute("data-status", "completed", timeout=30_000)
    bars = page.locator("#histogram svg rect.bar")
    expect(bars).to_have_count(2)
    # Both outcomes, the more frequent first (ties by bitstring), each with its share of the shots.
    keys = [bars.nth(i).get_attribute("data-bitstring") or "" for i in range(2)]
    counts = [int(bars.nth(i).get_attribute("data-count") or 0) for i in range(2)]
    assert sorted(keys) == ["00", "11"] and sum(counts) == 1024
    assert (-counts[0], keys[0]) < (-counts[1], keys[1])
    assert page.locator("#histogram svg text.bar-label").all_text_contents() == keys
    assert [count for count, _ in bar_values(page)] == counts
    for (count, shown), key in zip(bar_values(page), keys, strict=True):
        assert abs(shown - 100 * count / 1024) < 0.05, (key, count, shown)
    assert page.locator("#histogram svg rect.bar title").first.text_content() == (
        f"{keys[0]}: {counts[0]:,} shots ({bar_values(page)[0][1]:g}%)"
    )
    expect(page.locator("#histogram svg rect.bar-other")).to_have_count(0)
    expect(page.locator("#histogram .chart-note")).to_have_text(
        "All 2 outcomes, most frequent first. Percentages are of 1,024 shots."
    )
    task_id = page.url.rsplit("/", 1)[1]
    with dashboard.client() as client:
        task = client.get(f"/tasks/{task_id}").json()
    page_facts = facts(page)
    for name, field in [("Submitted", "created_at"), ("Started", "started_at"), ("Finished", "finished_at")]:
        assert ISO_UTC.match(page_facts[name]) and page_facts[name] == shown_time(task[field]), name
    for name in ["Parsing", "Transpilation", "Simulation"]:
        assert DURATION.match(page_facts[name]), (name, page_facts[name])
    expect(page.locator("#diagram")).to_contain_text("┤ H ├")
    expect(page.locator("#circuit-text")).to_have_text(BELL_QASM3)
    expect(page.locator("#cancel-button")).to_be_hidden()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "task-page.png"), full_page=True)

    page.goto(dashboard.base_url + "/")
    first_row = page.locator("#tasks tbody tr").first
    expect(first_row).to_contain_text("completed")
    expect(first_row.locator("td").nth(4)).to_have_text(shown_time(task["created_at"]))
    expect(first_row.locator("td").nth(5)).to_have_text(shown_time(task["finished_at"]))
    # No keys on the service: nothing asks for one, nothing shows one's usage, the tab keeps nothing.
    expect(page.locator("#sign-in, #sign-out")).to_have_count(0)
    expect(page.locator('header a[href="/metrics"]')).to_have_count(1)
    expect(page.locator("#owner-heading")).to_be_hidden()
    expect(page.locator("#usage-section")).to_be_hidden()
    assert page.evaluate("sessionStorage.length + localStorage.length") == 0


def test_durations_read_in_units(page: Page, dashboard: Cluster) -> None:
    page.goto(dashboard.base_url + "/")
    cases = {0.812: "812 µs", 8.77: "8.8 ms", 812.4: "812 ms", 25297.455: "25.3 s", 432_000: "7 min 12 s"}
    shown = page.evaluate("(values) => values.map((ms) => QTQ.duration(ms))", list(cases))
    assert shown == list(cases.values())


def test_a_task_with_many_outcomes_charts_the_top_ones_and_sums_the_rest(page: Page, dashboard: Cluster) -> None:
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    shots = 100_000
    with dashboard.client() as client:
        task_id = submit(client, hadamards(17), shots=shots, seed=5)  # about 70,000 outcomes in 0.6 s
        counts: dict[str, int] = wait_done(client, task_id)["result"]
    assert len(counts) > 50_000
    top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_OUTCOMES]
    rest = len(counts) - TOP_OUTCOMES

    page.goto(f"{dashboard.base_url}/ui/tasks/{task_id}")
    bars = page.locator("#histogram svg rect.bar")
    expect(bars).to_have_count(TOP_OUTCOMES + 1)
    labels = page.locator("#histogram svg text.bar-label").all_text_contents()
    assert labels == [key for key, _ in top] + [f"other ({rest:,} outcomes)"]
    values = bar_values(page)
    assert [count for count, _ in values] == [count for _, count in top] + [shots - sum(c for _, c in top)]
    for count, shown in values:
        assert abs(shown - 100 * count / shots) <= 0.0005 * max(1, 100 * count / shots), (count, shown)
    other = page.locator("#histogram svg rect.bar-other")
    assert other.get_attribute("data-outcomes") == str(rest)
    expect(page.locator("#histogram .chart-note")).to_have_text(
        f"The {TOP_OUTCOMES} most frequent of {len(counts):,} outcomes; the other {rest:,} share the last bar. "
        f"Percentages are of {shots:,} shots."
    )

    # The chart fits its card and the window: no sideways scrolling, whatever the outcome count.
    chart = page.locator("#histogram svg").bounding_box()
    card = page.locator("#result-section").bounding_box()
    assert chart is not None and card is not None
    assert card["x"] <= chart["x"] and chart["x"] + chart["width"] <= card["x"] + card["width"], (chart, card)
    assert chart["height"] < 600, chart
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    # Every bar label is drawn inside the chart, none cut off at its left edge.
    for box in [page.locator("#histogram svg text.bar-label").nth(i).bounding_box() for i in (0, TOP_OUTCOMES)]:
        assert box is not None and box["x"] >= chart["x"] and box["x"] + box["width"] <= chart["x"] + chart["width"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "task-page-many-outcomes.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: the chart shrinks with its card
    page.reload()
    expect(bars).to_have_count(TOP_OUTCOMES + 1)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.evaluate("window.cspViolations") == []
    assert not [text for text in console if "Content Security Policy" in text], console


def test_page_through_every_task_and_filter_by_state(page: Page, make_cluster: type) -> None:
    cluster: Cluster = make_cluster()
    cluster.start_api()  # no worker: every task stays submitted, and the list holds still
    total = 2 * PAGE_SIZE + 7
    with cluster.client() as client:
        submitted = [submit(client, BELL_QASM3) for _ in range(total)]
    page.goto(cluster.base_url + "/")
    info = page.locator("#page-info")
    older, newer = page.locator("#older-button"), page.locator("#newer-button")
    links = page.locator("#tasks tbody td a")
    expect(info).to_have_text(f"Tasks 1–{PAGE_SIZE}, newest first")
    expect(newer).to_be_disabled()
    seen: list[str] = []
    for first, last in [(1, PAGE_SIZE), (PAGE_SIZE + 1, 2 * PAGE_SIZE), (2 * PAGE_SIZE + 1, total)]:
        expect(info).to_have_text(f"Tasks {first}–{last}, newest first")
        expect(links).to_have_count(last - first + 1)
        seen += [link.get_attribute("title") or "" for link in links.all()]
        if last < total:
            older.click()
    expect(older).to_be_disabled()
    assert len(set(seen)) == len(seen) == total, "a task was shown twice or not at all"
    assert seen == submitted[::-1], "not newest first"  # the last page ends with the oldest task

    # A task arrives while the oldest page is open: that page, refreshed, holds still.
    with cluster.client() as client:
        newest = submit(client, BELL_QASM3)
    page.evaluate("document.querySelector('#tasks tbody tr').dataset.seen = 'yes'")
    expect(page.locator("#tasks tbody tr[data-seen]")).to_have_count(0)  # replaced by the next refresh
    assert [link.get_attribute("title") for link in links.all()] == seen[2 * PAGE_SIZE :]
    newer.click()
    expect(info).to_have_text(f"Tasks {PAGE_SIZE + 1}–{2 * PAGE_SIZE}, newest first")
    assert [link.get_attribute("title") for link in links.all()] == seen[PAGE_SIZE : 2 * PAGE_SIZE]
    newer.click()
    expect(links.first).to_have_attribute("title", newest)
    expect(links).to_have_count(PAGE_SIZE)

    older.click()
    page.select_option("#state-filter", "completed")  # a filter starts again from the newest
    expect(page.locator("#tasks tbody tr")).to_have_text(["No tasks."])
    expect(older).to_be_disabled()
    expect(newer).to_be_disabled()
    page.select_option("#state-filter", "submitted")
    expect(info).to_have_text(f"Tasks 1–{PAGE_SIZE}, newest first")
    expect(links.first).to_have_attribute("title", newest)


def test_find_a_task_by_its_id(page: Page, dashboard: Cluster) -> None:
    with dashboard.client() as client:
        task_id = submit(client, BELL_QASM3, seed=3)
    page.goto(dashboard.base_url + "/")
    page.fill("#find-id", "no-such-task")
    page.click("#find-button")
    expect(page.locator("#find-error")).to_have_text("Task not found: no-such-task")
    assert page.url == dashboard.base_url + "/"
    page.fill("#find-id", "..")  # resolved by the URL parser to another path: still not a task
    page.click("#find-button")
    expect(page.locator("#find-error")).to_have_text("Task not found: ..")
    page.fill("#find-id", f"  {task_id} ")  # as pasted, with spaces around it
    page.click("#find-button")
    page.wait_for_url(f"**/ui/tasks/{task_id}")
    expect(page.locator("#task-id")).to_have_text(task_id)


def test_a_broken_circuit_shows_its_error_and_markup_stays_text(page: Page, dashboard: Cluster) -> None:
    page.goto(dashboard.base_url + "/")
    page.fill("#circuit", 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[1] q;\n<img src=x onerror=alert(1)> q[0];\n')
    page.click("#submit-button")
    page.wait_for_url("**/ui/tasks/*")
    expect(page.locator("#status")).to_have_attribute("data-status", "failed", timeout=30_000)
    error = page.locator("#task-error")
    expect(error).to_contain_text("QASM3ParsingError: line 4:0")
    expect(page.locator("#circuit-text")).to_contain_text("<img src=x onerror=alert(1)>")
    assert page.locator("img").count() == 0, "circuit text was rendered as HTML"
    expect(page.locator("#result-section")).to_be_hidden()


def test_an_invalid_submission_shows_the_api_message(page: Page, dashboard: Cluster) -> None:
    page.goto(dashboard.base_url + "/")
    page.fill("#circuit", "   \n")
    page.click("#submit-button")
    expect(page.locator("#submit-error")).to_have_text("circuit: must not be empty or only whitespace")
    assert page.url == dashboard.base_url + "/"


def test_cancel_a_queued_task_from_its_page(page: Page, dashboard: Cluster) -> None:
    with dashboard.client() as client:
        blocker = submit(client, slow_circuit(60_000), shots=10)  # keeps the only worker busy
        queued = submit(client, BELL_QASM3)
        page.goto(f"{dashboard.base_url}/ui/tasks/{queued}")
        expect(page.locator("#status")).to_have_attribute("data-status", "submitted")
        page.click("#cancel-button")
        expect(page.locator("#status")).to_have_attribute("data-status", "cancelled")
        expect(page.locator("#cancel-button")).to_be_hidden()
        client.post(f"/tasks/{blocker}/cancel")
    page.goto(dashboard.base_url + "/")
    page.select_option("#state-filter", "cancelled")
    expect(page.locator("#tasks tbody tr").first).to_contain_text("cancelled")


def test_unknown_task_page_says_not_found(page: Page, dashboard: Cluster) -> None:
    page.goto(f"{dashboard.base_url}/ui/tasks/no-such-task")
    expect(page.locator("#status")).to_have_text("Task not found")


def test_swagger_ui_works_offline_and_runs_bell(page: Page, dashboard: Cluster) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(dashboard.base_url + "/docs")
    operation = page.locator("#operations-default-submit_task_tasks_post")
    operation.locator(".opblock-summary").click()
    page.get_by_role("button", name="Try it out").click()
    body = operation.locator("textarea.body-param__text")
    expect(body).to_contain_text("OPENQASM 3.0;")  # the documented example is prefilled
    page.get_by_role("button", name="Execute").click()
    live = operation.locator(".live-responses-table tbody tr.response").first
    expect(live.locator(".response-col_status")).to_have_text("202")
    answer = live.locator(".response-col_description pre").first.text_content() or ""
    task_id = json.loads(answer)["task_id"]
    with dashboard.client() as client:
        task = wait_done(client, task_id)
    assert task["status"] == "completed" and set(task["result"]) == {"00", "11"}
    assert all(url.startswith(dashboard.base_url) for url in requested), [
        url for url in requested if not url.startswith(dashboard.base_url)
    ]


def test_a_completed_task_renders_under_the_content_security_policy(page: Page, dashboard: Cluster) -> None:
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    with dashboard.client() as client:
        task_id = submit(client, BELL_QASM3, seed=11)
        wait_done(client, task_id)
    response = page.goto(f"{dashboard.base_url}/ui/tasks/{task_id}")
    assert response is not None and "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.locator("#status")).to_have_attribute("data-status", "completed")
    expect(page.locator("#histogram svg rect.bar")).to_have_count(2)
    expect(page.locator("#diagram")).to_contain_text("┤ H ├")
    page.goto(dashboard.base_url + "/")
    expect(page.locator("#summary .card")).to_have_count(5)
    expect(page.locator("#tasks tbody tr").first).to_contain_text("completed")
    assert page.evaluate("window.cspViolations") == []
    assert not [text for text in console if "Content Security Policy" in text], console

    # The policy is in force, and the recorder sees a breach: injected inline script does not run.
    page.evaluate(
        "document.body.append(Object.assign(document.createElement('script'), {textContent: 'window.ran = 1'}))"
    )
    wait_for(lambda: page.evaluate("window.cspViolations").count("script-src-elem") == 1, 10, "the CSP report")
    assert page.evaluate("window.ran") is None


def assert_fits(page: Page, inner: str, card: str) -> None:
    """`inner` lies within its card, and the page does not scroll sideways."""
    box, card_box = page.locator(inner).bounding_box(), page.locator(card).bounding_box()
    assert box is not None and card_box is not None
    assert card_box["x"] <= box["x"] and box["x"] + box["width"] <= card_box["x"] + card_box["width"], (box, card_box)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def path_points(path: Locator) -> list[tuple[float, float]]:
    """The (x, y) of every point of an SVG path drawn with M and L commands only."""
    d = path.get_attribute("d") or ""
    assert re.fullmatch(r"([ML]-?[\d.]+ -?[\d.]+)+", d), d[:200]
    return [(float(x), float(y)) for x, y in re.findall(r"[ML](-?[\d.]+) (-?[\d.]+)", d)]


SWEEP_QASM = (
    'OPENQASM 3.0;\ninclude "stdgates.inc";\ninput float theta;\ninput float phi;\nqubit[2] q;\nbit[2] c;\n'
    "rx(theta) q[0];\nrx(phi) q[1];\nc = measure q;\n"
)


def test_a_sweep_draws_a_line_per_top_outcome(page: Page, dashboard: Cluster) -> None:
    console = watch_csp(page)
    points = 1000  # MAX_SWEEP_POINTS: still one path per line
    thetas = [math.pi * i / (points - 1) for i in range(points)]
    with dashboard.client() as client:
        task_id = submit(
            client,
            SWEEP_QASM,
            shots=100,
            seed=9,
            parameters={"theta": thetas, "phi": 0.7},
            memory=True,
        )
        task = wait_done(client, task_id)
    assert task["status"] == "completed", task.get("error")

    page.goto(f"{dashboard.base_url}/ui/tasks/{task_id}")
    lines = page.locator("#sweep-counts svg path.line")
    expect(lines).to_have_count(4)  # every outcome of two qubits, each likely somewhere
    totals: dict[str, int] = {}
    for point in task["results"]:
        for key, count in point["counts"].items():
            totals[key] = totals.get(key, 0) + count
    ranked = sorted(totals, key=lambda key: (-totals[key], key))
    assert [lines.nth(i).get_attribute("data-series") for i in range(4)] == ranked
    assert page.locator("#sweep-counts .legend li").all_text_contents() == ranked
    for i in range(4):
        assert len(path_points(lines.nth(i))) == points
    expect(page.locator("#sweep-counts svg path.dots")).to_have_count(0)  # 1,000 points: lines only
    assert page.locator("#sweep-counts svg *").count() < 100, "a node per point"
    expect(page.locator("#sweep-counts svg text.axis-label")).to_have_text("theta")
    expect(page.locator("#sweep-counts .chart-note")).to_have_text(
        "All 4 outcomes, each as count / shots (100 shots at each of 1,000 points)."
    )
    # theta from 0 to pi moves qubit 0 from |0> to |1>: "00" falls, "01" rises (SVG y grows downwards).
    for key, rises in [("00", False), ("01", True)]:
        drawn = path_points(page.locator(f'#sweep-counts svg path[data-series="{key}"]'))
        assert drawn[0][0] < drawn[-1][0] and (drawn[-1][1] < drawn[0][1]) == rises, key

    expect(page.locator("#sweep-expectations")).to_be_hidden()  # no observables asked

    page_facts = facts(page)
    assert (
        page_facts["Parameters"]
        == "theta = [0, 0.00314474, 0.00628947, 0.00943421, …, 3.14159] (1,000 values); phi = 0.7"
    )
    expect(page.locator("#memory-summary")).to_have_text("100,000 outcomes over 1,000 points, in shot order")
    with page.expect_download() as info:
        page.click("#memory-download")
    downloaded = json.loads(Path(info.value.path()).read_text())
    assert downloaded == [{"parameters": p["parameters"], "memory": p["memory"]} for p in task["results"]]
    expect(page.locator("#result-section")).to_be_hidden()  # a sweep has no single histogram

    assert_fits(page, "#sweep-counts svg", "#sweep-section")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "task-page-sweep.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(lines).to_have_count(4)
    assert_fits(page, "#sweep-counts svg", "#sweep-section")
    page.screenshot(path=str(ARTIFACTS / "task-page-sweep-phone.png"), full_page=True)
    assert_no_csp_violations(page, console)


def test_a_sweep_of_several_parameters_is_drawn_against_the_point_index(page: Page, dashboard: Cluster) -> None:
    console = watch_csp(page)
    parameters = {"theta": [0, 1, 2, 3, 3.1], "phi": [3, 2, 1, 0, 0.1]}
    with dashboard.client() as client:
        task_id = submit(client, SWEEP_QASM, shots=50, seed=2, parameters=parameters, observables=["IZ", "ZI"])
        task = wait_done(client, task_id)
    assert task["status"] == "completed", task.get("error")
    page.goto(f"{dashboard.base_url}/ui/tasks/{task_id}")
    lines = page.locator("#sweep-counts svg path.line")
    expect(lines).to_have_count(4)
    expect(page.locator("#sweep-counts svg text.axis-label")).to_have_text("point")
    note = "Several parameters move (theta, phi), so the x axis is the point index."
    expect(page.locator("#sweep-counts .chart-note")).to_contain_text(note)
    for i in range(4):
        assert [x for x, _ in path_points(lines.nth(i))] == sorted({x for x, _ in path_points(lines.nth(i))})
        assert len(path_points(lines.nth(i))) == 5
    expect(page.locator("#sweep-counts svg path.dots")).to_have_count(4)  # few points: each one dotted

    expectation_lines = page.locator("#sweep-expectations svg path.line")
    expect(expectation_lines).to_have_count(2)
    assert page.locator("#sweep-expectations .legend li").all_text_contents() == ["IZ", "ZI"]
    expect(page.locator("#sweep-expectations svg text.axis-label")).to_have_text("point")
    iz, zi = (path_points(expectation_lines.nth(i)) for i in range(2))
    assert len(iz) == len(zi) == 5
    # <IZ> = cos(theta) falls from 1 as theta grows; <ZI> = cos(phi) rises as phi shrinks (SVG y grows down).
    assert iz[0][1] < iz[-1][1] and zi[0][1] > zi[-1][1], (iz, zi)
    page_facts = facts(page)
    assert page_facts["Parameters"] == "theta = [0, 1, 2, 3, 3.1] (5 values); phi = [3, 2, 1, 0, 0.1] (5 values)"
    assert page_facts["Observables"] == "IZ, ZI"
    expect(page.locator("#memory-section")).to_be_hidden()
    for chart in ("#sweep-counts svg", "#sweep-expectations svg"):
        assert_fits(page, chart, "#sweep-section")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "task-page-sweep-observables.png"), full_page=True)
    assert_no_csp_violations(page, console)


def test_expectation_values_read_as_a_table(page: Page, dashboard: Cluster) -> None:
    console = watch_csp(page)
    observables = ["ZZ", "XX", "ZI", [["ZI", 0.5], ["IZ", 0.5]], [["ZZ", 0.5], ["YY", -0.5]]]
    with dashboard.client() as client:
        task_id = submit(client, BELL_QASM3, seed=4, observables=observables, method="statevector")
        task = wait_done(client, task_id)
    page.goto(f"{dashboard.base_url}/ui/tasks/{task_id}")
    rows = page.locator("#expectation-values tbody tr")
    expect(rows).to_have_count(len(observables))
    table = [row.locator("td").all_text_contents() for row in rows.all()]
    assert table == [["ZZ", "1"], ["XX", "1"], ["ZI", "0"], ["0.5·ZI + 0.5·IZ", "0"], ["0.5·ZZ − 0.5·YY", "1"]]
    for (_, shown), value in zip(table, task["expectation_values"], strict=True):
        assert abs(float(shown) - value) < 1e-9, (shown, value)
    assert facts(page)["Method"] == "statevector"
    expect(page.locator("#histogram svg rect.bar")).to_have_count(2)  # the counts as before
    expect(page.locator("#memory-section")).to_be_hidden()
    expect(page.locator("#sweep-section")).to_be_hidden()
    shown = page.evaluate("[1, 0.70710678118, -0.5, 1.5e-7, 1234567].map((v) => QTQ.number(v))")
    assert shown == ["1", "0.707107", "-0.5", "1.5e-7", "1234570"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "task-page-observables.png"), full_page=True)
    assert_no_csp_violations(page, console)


def test_memory_is_a_download_never_a_list(page: Page, dashboard: Cluster) -> None:
    console = watch_csp(page)
    shots = 100_000  # MAX_MEMORY_SHOTS
    noise = {"readout": {"p01": 0.02, "p10": 0.03}}
    with dashboard.client() as client:
        task_id = submit(client, hadamards(4), shots=shots, seed=6, memory=True, noise=noise)
        task = wait_done(client, task_id)
    assert len(task["memory"]) == shots
    page.goto(f"{dashboard.base_url}/ui/tasks/{task_id}")
    expect(page.locator("#memory-summary")).to_have_text("100,000 outcomes, in shot order")
    expect(page.locator("#histogram svg rect.bar")).to_have_count(TOP_OUTCOMES)
    assert page.evaluate("document.getElementsByTagName('*').length") < 400
    assert len(page.locator("body").inner_text()) < 5_000, "the outcomes were written on the page"
    assert facts(page)["Noise"] == "readout p01 0.02, p10 0.03"
    link = page.locator("#memory-download")
    assert (link.get_attribute("href") or "").startswith("blob:")
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename == f"{task_id}-memory.json"
    assert json.loads(Path(download.path()).read_text()) == task["memory"]
    assert_fits(page, "#memory-section p", "#memory-section")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "task-page-memory.png"), full_page=True)
    assert_no_csp_violations(page, console)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def attacker_site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Another origin: a static web server on its own port, reached as http://localhost:PORT."""
    site = tmp_path / "attacker"
    site.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=site))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_address[1]}", site
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_a_page_on_another_origin_cannot_cancel_tasks(
    page: Page, dashboard: Cluster, attacker_site: tuple[str, Path]
) -> None:
    attacker_url, site = attacker_site
    api = dashboard.base_url  # http://127.0.0.1:PORT: another origin than http://localhost:OTHER
    assert dashboard.api is not None
    api_service = dashboard.api
    refused = lambda: api_service.log().count("refused POST /tasks")  # noqa: E731
    refused_before = refused()
    # POST /tasks takes a text/plain body, which a form or a no-cors fetch may send without a preflight.
    create = f"{api}/tasks?tag=attack:{uuid.uuid4().hex}"
    with dashboard.client() as client:
        # Long enough to be running still at the end, however loaded the machine; cancelled there.
        running = submit(client, slow_circuit(300_000), shots=10)
        queued = submit(client, BELL_QASM3)
        wait_for(lambda: client.get(f"/tasks/{running}").json()["status"] == "pending", 30, "the slow task to run")
        (site / "attack.html").write_text(
            f"""<!doctype html>
<iframe name="sink"></iframe>
<iframe name="sink2"></iframe>
<iframe name="sink3"></iframe>
<form id="form" method="POST" action="{api}/tasks/{queued}/cancel" target="sink">
  <input name="confirm" value="yes">
</form>
<form id="text-form" method="POST" action="{api}/tasks/{running}/cancel" target="sink3" enctype="text/plain">
  <input name="x" value="y">
</form>
<form id="create-form" method="POST" action="{create}" target="sink2" enctype="text/plain">
  <input name="OPENQASM 3.0;//" value="">
</form>
<script>
  document.getElementById("form").submit();
  document.getElementById("create-form").submit();
  document.getElementById("text-form").submit();
  Promise.allSettled([
    fetch("{api}/tasks/{running}/cancel", {{method: "POST", mode: "no-cors"}}),
    fetch("{api}/tasks/{queued}/cancel", {{method: "POST", mode: "no-cors", body: "{{}}"}}),
    fetch("{create}", {{method: "POST", mode: "no-cors", body: {json.dumps(BELL_QASM3)}}}),
  ]).then(() => {{ document.title = "sent"; }});
</script>
"""
        )
        page.goto(f"{attacker_url}/attack.html")
        expect(page).to_have_title("sent")

        def harmed() -> bool:
            queued_view, running_view = (client.get(f"/tasks/{t}").json() for t in (queued, running))
            created = client.get(create.removeprefix(api)).json()["items"]
            return queued_view["status"] != "submitted" or "cancel_requested" in running_view or bool(created)

        # The browser sent all six requests and the API refused each of them, or the harm is done.
        wait_for(lambda: refused() - refused_before == 6 or harmed(), 15, "the six cross-site requests")
        assert not harmed(), "a page on another origin cancelled or created a task"
        assert client.get(f"/tasks/{running}").json()["status"] == "pending"
        assert refused() - refused_before == 6
        # The dashboard's own Cancel button (same origin) still works.
        page.goto(f"{api}/ui/tasks/{running}")
        page.click("#cancel-button")
        expect(page.locator("#status")).to_have_attribute("data-status", "cancelled", timeout=30_000)
        client.post(f"/tasks/{queued}/cancel")
