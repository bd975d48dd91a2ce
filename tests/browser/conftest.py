"""Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, and the login step."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        if os.environ.get("REQUIRE_BROWSER_TESTS"):
            pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(autouse=True)
def _tasks_in_the_request(settings, monkeypatch, request):  # type: ignore[no-untyped-def]
    """Tasks a page starts (runs, jobs) run in the request, never left in the broker for a
    worker of a later test. The near-duplicate panel's embedding task runs only in the
    tests about it: elsewhere loading the embedding model inside the request would only
    slow the pages the test is timing its clicks against."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    if request.module.__name__.rsplit(".", 1)[-1] != "test_duplicates":
        from scoring.analytics.tasks import embed_rubric_texts

        monkeypatch.setattr(embed_rubric_texts, "apply_async", lambda *args, **kwargs: None)


def _wait_for_function(self, expression, *, arg=None, timeout=None, polling=None):  # type: ignore[no-untyped-def]
    """Page.wait_for_function without eval: Playwright evaluates the predicate with eval
    inside the page, which the studio's Content-Security-Policy forbids (script-src
    'self'); this polls it through page.evaluate (the DevTools protocol) instead, with the
    same meaning: the predicate's first truthy value, across navigations, or a timeout."""
    from playwright.sync_api import Error
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    seconds = (30_000 if timeout is None else timeout) / 1000
    interval = polling if isinstance(polling, (int, float)) else 50
    deadline = time.monotonic() + seconds
    while True:
        try:
            value = self.evaluate(expression, arg)
        except Error as exc:  # a navigation replaced the page's context: try again
            if "context" not in str(exc).lower() and "navigat" not in str(exc).lower():
                raise
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise PlaywrightTimeoutError(f"wait_for_function timed out: {expression}")
        self.wait_for_timeout(interval)


@pytest.fixture(autouse=True)
def _waits_without_eval(monkeypatch):  # type: ignore[no-untyped-def]
    from playwright.sync_api import Page

    monkeypatch.setattr(Page, "wait_for_function", _wait_for_function)


@pytest.fixture
def page(browser, live_server):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def login(page, live_server, username):  # type: ignore[no-untyped-def]
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw")
    page.click("button.primary")
    page.wait_for_url(f"{live_server.url}/")
