"""The Analytics tab in headless Chromium after a per-criterion run (two samples) and a
pairwise run launched from the Runs page: the flagged criteria by rubric, the tables, and the
three charts drawn. Screenshots: var/screenshots/analytics*.png (1440×900)."""

from __future__ import annotations

import pytest

from annotation.projects import services as project_services
from annotation.prompts.models import PreferenceLabel
from annotation.rubrics import services as rubric_services
from annotation.rubrics.services import CriterionInput
from scoring.judges import services as judge_services
from tests.browser.conftest import SHOTS, login
from tests.factories import PromptFactory, ResponseFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _launch(page, live_server, mode, samples="1"):  # type: ignore[no-untyped-def]
    page.goto(f"{live_server.url}/p/cardio/runs/")
    page.select_option("select[name=mode]", mode)
    if mode != "pairwise":
        page.fill("input[name=samples]", samples)
    page.click("button[name=preview]")
    page.click("button[name=launch]")
    page.wait_for_selector("#progress >> text=Done")


def test_the_analytics_of_a_run_with_its_charts(page, live_server, fake_llm):  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    owner = UserFactory(username="dr-ada")
    project = project_services.project_create(name="Cardiology", slug="cardio", owner=owner)
    judge_services.endpoint_save(
        project=project, actor=owner,
        data={"name": "fake", "base_url": fake_llm.url + "/v1", "model": "fake-judge"},
    )  # fmt: skip
    for i in range(6):
        prompt = PromptFactory(project=project, external_id=f"chest-{i}")
        rubric_services.rubric_create(
            project=project, prompt=prompt, title=f"Chest pain {i}", author=owner,
            criteria=[CriterionInput(text="Advises calling emergency services", points=8),
                      CriterionInput(text="Mentions aspirin", points=3),
                      CriterionInput(text="Recommends rest only", points=-5)],
        )  # fmt: skip
        good = ResponseFactory(prompt=prompt, source="careful", content=f"Call emergency services ({i}); chew an aspirin.")  # fmt: skip
        ResponseFactory(prompt=prompt, source="middling", content=f"Call emergency services ({i}).")
        poor = ResponseFactory(prompt=prompt, source="casual", content=f"Lie down ({i}).")
        PreferenceLabel.objects.create(prompt=prompt, chosen=good, rejected=poor)

    login(page, live_server, "dr-ada")
    _launch(page, live_server, "per_criterion", samples="2")
    _launch(page, live_server, "pairwise")
    page.click("nav.tabs >> text=Analytics")
    page.wait_for_selector("#criteria-table")
    assert "Per criterion" in page.inner_text("select[name=run]")
    flagged = page.inner_text("#flagged")
    assert "Recommends rest only" in flagged and "Met by 0% of the 3 responses judged" in flagged
    assert "Chest pain" in flagged and page.is_visible(
        "#flagged button:has-text('Send these to Critique')"
    )
    # The charts are drawn (Chart.js sizes the canvas it draws on).
    for chart in ("hit-chart", "board-chart", "length-chart"):
        page.wait_for_function(
            f"!!window.Chart && !!window.Chart.getChart(document.getElementById('{chart}'))"
        )
    board = page.inner_text("#board-title + p + .columns")
    # The pairwise run finished after the graded one: its figures were computed again.
    assert "No pairwise run has finished" not in board and "From the pairwise judge" in board
    page.screenshot(path=str(SHOTS / "analytics.png"))
    page.locator("#board-title").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "analytics-leaderboard.png"))
