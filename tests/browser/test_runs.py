"""A scoring run in headless Chromium: preview, launch, live progress, scores by source with
the distribution chart, and one response's verdicts. Screenshots go to var/screenshots/."""

from __future__ import annotations

import pytest

from annotation.projects import services as project_services
from annotation.rubrics import services as rubric_services
from annotation.rubrics.services import CriterionInput
from scoring.judges import services as judge_services
from tests.browser.conftest import SHOTS, login
from tests.factories import PromptFactory, ResponseFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_launch_a_run_and_read_its_results(page, live_server, settings, fake_llm):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    SHOTS.mkdir(parents=True, exist_ok=True)
    owner = UserFactory(username="dr-run")
    project = project_services.project_create(name="Triage", slug="triage", owner=owner)
    judge_services.endpoint_save(
        project=project,
        actor=owner,
        data={"name": "fake", "base_url": fake_llm.url + "/v1", "model": "fake-judge"},
    )
    rubric_services.rubric_create(
        project=project,
        title="Every answer",
        author=owner,
        criteria=[
            CriterionInput(text="Advises urgent care for red flags", points=8),
            CriterionInput(text="Explains the reasoning", points=3),
            CriterionInput(text="Recommends an unproven remedy", points=-5),
        ],
    )
    for i in range(6):
        prompt = PromptFactory(project=project, external_id=f"case-{i}")
        for source in ("model-a", "model-b"):
            ResponseFactory(prompt=prompt, source=source, content=f"{source} answer {i}")
    login(page, live_server, "dr-run")
    page.goto(f"{live_server.url}/p/triage/")
    page.click("nav.tabs >> text=Runs")
    page.select_option("select[name=mode]", "per_criterion")
    page.click("button[name=preview]")
    page.wait_for_selector("#preview")
    assert "36" in page.inner_text("#preview")  # 12 responses × 3 criteria
    page.click("button[name=launch]")
    page.wait_for_selector("#progress >> text=Done")
    page.wait_for_selector("#source-scores")
    assert "model-a" in page.inner_text("#source-scores")
    page.wait_for_function("document.querySelector('#score-chart').width > 0")
    # The y axis counts responses: its ticks are whole numbers.
    ticks = page.evaluate(
        "Chart.getChart(document.querySelector('#score-chart')).scales.y.ticks.map(t => t.value)"
    )
    assert ticks and all(float(t).is_integer() for t in ticks)
    page.click("#response-scores tbody tr:first-child summary")
    page.wait_for_selector("#response-scores .verdicts ol")
    assert "Advises urgent care" in page.inner_text("#response-scores .verdicts")
    page.screenshot(path=str(SHOTS / "run.png"), full_page=True)

    # A second run on a seeded sample of 5 of the 6 prompts: the preview counts only those.
    page.click("nav.tabs >> text=Runs")
    page.click("#subset summary")
    page.fill("input[name=sample]", "5")
    page.fill("input[name=seed]", "2")
    page.click("button[name=preview]")
    page.wait_for_selector("#preview")
    assert "5 (a subset)" in page.inner_text("#preview")
    assert "Launch 30 judgments" in page.inner_text("button[name=launch]")  # 10 × 3
    page.screenshot(path=str(SHOTS / "run_subset.png"), full_page=True)
    page.click("button[name=launch]")
    page.wait_for_selector("#progress >> text=Done")
    assert "5 prompts (a subset)" in page.inner_text("main")
