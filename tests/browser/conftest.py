"""Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, and the login step."""

from __future__ import annotations

import os
import shutil
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
        from scoring.tasks import embed_rubric_texts

        monkeypatch.setattr(embed_rubric_texts, "apply_async", lambda *args, **kwargs: None)


@pytest.fixture
def page(browser, live_server):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def login(page, live_server, username):  # type: ignore[no-untyped-def]
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw")
    page.click("button.primary")
    page.wait_for_url(f"{live_server.url}/")
