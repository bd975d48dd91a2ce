"""The demo project as `make run` sets it up, walked in headless Chromium with nothing
imported: the admin grades the synthetic responses and compares them pairwise on the
offline judge, makes a review queue from the pairwise run and submits a rubric; the demo
reviewer reviews a pair blind and approves the rubric; the admin exports the approved
rubric for verl. Screenshots go to var/screenshots/demo_*.png."""

from __future__ import annotations

import json
import re

import pytest
from django.core.management import call_command

from annotation.prompts.models import Prompt
from annotation.rubrics.models import Rubric
from scoring.datasets.models import Export
from scoring.runs.models import Run
from tests.browser.conftest import SHOTS
from tests.conftest import SHARED_DATA

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not (SHARED_DATA / "healthbench").is_dir(), reason="no ../shared/data"),
]
SOURCES = ["synthetic-thorough", "synthetic-partial", "synthetic-careless"]


def log_in(page, live_server, username: str, password: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button.primary")
    page.wait_for_url(f"{live_server.url}/")


def log_out(page) -> None:  # type: ignore[no-untyped-def]
    page.click("header form button.link")
    page.wait_for_url(re.compile(r".*/login/.*|.*/$"))


def launch_run(page, mode: str) -> None:  # type: ignore[no-untyped-def]
    page.click("nav.tabs >> text=Runs")
    page.select_option("select[name=mode]", mode)
    page.select_option("select[name=sources]", SOURCES)
    page.click("button[name=preview]")
    page.wait_for_selector("#preview")
    page.click("button[name=launch]")
    page.wait_for_selector("#progress >> text=Done", timeout=120_000)


def test_the_demo_loop_in_the_browser(page, live_server, settings, tmp_path, fake_llm):  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    settings.VAR_DIR = tmp_path  # the demo's passwords, not the developer's
    with open(tmp_path / "setup.txt", "w") as out:
        call_command("demo_setup", data_dir=SHARED_DATA, stdout=out)
        call_command("demo_llm_endpoint", url=fake_llm.url + "/v1", stdout=out)
    admin_pw = (tmp_path / "demo-admin-password").read_text().strip()
    reviewer_pw = (tmp_path / "demo-reviewer-password").read_text().strip()

    # The admin grades the demo's responses, then compares them in pairs.
    log_in(page, live_server, "admin", admin_pw)
    page.click("text=Demo: HealthBench and MT-Bench")
    launch_run(page, "grouped")
    page.wait_for_selector("#source-scores")
    scores = page.inner_text("#source-scores")
    assert all(s in scores for s in SOURCES), scores
    graded = Run.objects.get(mode="grouped")
    assert (graded.status, graded.failed, graded.done) == ("done", 0, graded.total)
    page.screenshot(path=str(SHOTS / "demo_grouped_run.png"), full_page=True)

    launch_run(page, "pairwise")
    pairwise = Run.objects.get(mode="pairwise")
    assert (pairwise.status, pairwise.failed) == ("done", 0)
    page.click("#make-review-queue summary")
    page.fill("#make-review-queue input[name=overlap]", "1")
    page.click("#make-review-queue button.primary")
    page.wait_for_selector("text=Review")
    page.screenshot(path=str(SHOTS / "demo_pairwise_run.png"), full_page=True)

    # The admin submits one conversation's rubric for review.
    prompt = (
        Prompt.objects.filter(project__slug="demo", responses__source="synthetic-thorough")
        .order_by("pk")
        .first()
    )
    page.goto(f"{live_server.url}/p/demo/prompts/{prompt.pk}/")
    page.wait_for_load_state("networkidle")  # the editor's panels have finished loading
    page.click("text=Submit v1 for review")
    page.wait_for_selector("#editor .status-in_review")
    log_out(page)

    # The reviewer reviews a pair blind (the judge's verdict appears only after committing)
    # and approves the rubric.
    log_in(page, live_server, "reviewer", reviewer_pw)
    page.click("text=Demo: HealthBench and MT-Bench")
    page.click("nav.tabs >> text=Reviews")
    page.click("a.button.primary >> text=Review")
    page.wait_for_selector("#decision")
    assert page.locator("#judge-verdict").count() == 0
    page.keyboard.press("1")
    page.screenshot(path=str(SHOTS / "demo_review_blind.png"), full_page=True)
    page.keyboard.press("Enter")
    page.wait_for_selector("#judge-verdict")
    page.screenshot(path=str(SHOTS / "demo_review_revealed.png"), full_page=True)
    page.goto(f"{live_server.url}/p/demo/prompts/{prompt.pk}/")
    page.wait_for_load_state("networkidle")
    page.click("text=Approve v1")
    page.wait_for_selector("#editor .status-approved")
    assert Rubric.objects.get(prompt=prompt).status == "approved"
    log_out(page)

    # The admin exports the approved rubric as verl rows.
    log_in(page, live_server, "admin", admin_pw)
    page.goto(f"{live_server.url}/p/demo/")
    page.click("nav.tabs >> text=Exports")
    page.select_option("select[name=kind]", "rl_verl")
    page.select_option("select[name=format]", "jsonl")
    page.click("#export-form button.primary")
    export = Export.objects.get()
    page.wait_for_selector(f"#export-{export.pk} [data-status=done]", timeout=60_000)
    export.refresh_from_db()
    assert export.rows_total == 1
    path = tmp_path / "export.jsonl"
    with page.expect_download() as info:
        page.click(f"#export-{export.pk} >> text=train.jsonl")
    info.value.save_as(path)
    row = json.loads(path.read_text().splitlines()[0])
    assert row["extra_info"]["prompt"] == prompt.messages
    page.screenshot(path=str(SHOTS / "demo_export.png"), full_page=True)
