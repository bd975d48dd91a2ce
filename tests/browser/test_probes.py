"""A judge probe in headless Chromium: from the Runs page to the probe form, started, its
report with goals and a worst example side by side, and the Analytics tab's summary of it.
Screenshots go to var/screenshots/."""

from __future__ import annotations

import pytest

from annotation.projects import services as project_services
from annotation.rubrics import services as rubric_services
from annotation.rubrics.services import CriterionInput
from scoring.judges import services as judge_services
from tests.browser.conftest import SHOTS, login
from tests.factories import PromptFactory, ResponseFactory, UserFactory
from tests.scoring.probes.conftest import CRITERIA, TOPICS

pytestmark = pytest.mark.django_db(transaction=True)


def test_probe_a_judge_and_read_the_report(page, live_server, settings, fake_llm):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    SHOTS.mkdir(parents=True, exist_ok=True)
    owner = UserFactory(username="dr-probe")
    project = project_services.project_create(name="Colds", slug="colds", owner=owner)
    judge_services.endpoint_save(
        project=project, actor=owner,
        data={"name": "Careful judge", "base_url": fake_llm.url + "/v1", "model": "fake-judge"},
    )  # fmt: skip
    for p in range(5):
        prompt = PromptFactory(project=project, external_id=f"cold-{p}")
        rubric_services.rubric_create(
            project=project, title=f"Cold {p}", author=owner, prompt=prompt,
            criteria=[CriterionInput(text=t, points=pts) for t, pts in CRITERIA],
        )  # fmt: skip
        for r in range(2):
            body = "\n\n".join(text for _, text in TOPICS[: 1 + (p + r) % 4])
            ResponseFactory(prompt=prompt, source=f"model-{r}", content=body)
    login(page, live_server, "dr-probe")
    page.goto(f"{live_server.url}/p/colds/runs/")
    page.click("#probes-link")
    page.wait_for_selector("#probe-form")
    page.fill("input[name=sample]", "8")
    page.click("#probe-form button.primary")
    page.wait_for_selector("#probe-report")
    report = page.inner_text("#probe-report")
    for label in ("Padding", "Reformatting", "Flattering", "reordered", "Injected", "Causal"):
        assert label in report
    assert "✓ under 2 %" in page.inner_text("#kind-injection")
    assert "sensitivity 100.0 %" in page.inner_text("#kind-causal")
    example = page.locator("#worst-causal details").first
    assert example.locator("del, ins").count() > 0
    assert "changed" in example.inner_text()
    page.screenshot(path=str(SHOTS / "probe-report.png"), full_page=True)
    with page.expect_download() as download:
        page.click("text=CSV")
    assert download.value.suggested_filename.startswith("probe-")
    page.click("nav.tabs >> text=Analytics")
    page.wait_for_selector("#judge-probes")
    assert "Careful judge" in page.inner_text("#judge-probes")
    page.locator("#judge-probes").screenshot(path=str(SHOTS / "analytics-probes.png"))
    page.goto(f"{live_server.url}/p/colds/probes/")
    page.wait_for_selector("#probes")
    page.screenshot(path=str(SHOTS / "probes.png"), full_page=True)
