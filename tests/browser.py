"""Helpers for the browser tests: Debian's Chromium and how it is launched, the Content Security
Policy recorder, and how the dashboard writes times and facts. The fixtures (`browser`, `page`,
`dashboard`) are in conftest.py."""

from __future__ import annotations

import re
import shutil

from playwright.sync_api import Page

from tests.services import ROOT

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without these, Chromium keeps trying to reach Google's services through a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# What the dashboard shows: UTC to the millisecond.
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

# Recorded before any page script runs (Playwright's init scripts are not subject to the page's CSP).
RECORD_CSP_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => window.cspViolations.push(e.violatedDirective));
"""


def shown_time(api_time: str) -> str:
    """The API's microsecond RFC 3339 time as the dashboard shows it (milliseconds, `Z`)."""
    return api_time[:23] + "Z"


def facts(page: Page) -> dict[str, str]:
    """The page's `#facts` list as name -> text."""
    names = page.locator("#facts dt").all_text_contents()
    return dict(zip(names, page.locator("#facts dd").all_text_contents(), strict=True))


def watch_csp(page: Page) -> list[str]:
    """Record the page's CSP violations (window.cspViolations) and console lines (returned)."""
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    return console


def assert_no_csp_violations(page: Page, console: list[str]) -> None:
    assert page.evaluate("window.cspViolations") == []
    assert not [text for text in console if "Content Security Policy" in text], console
