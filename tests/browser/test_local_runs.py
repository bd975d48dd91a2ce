"""A local-judge run in headless Chromium: choose the local endpoint on the Runs page,
launch, and read the expected scores and each verdict's P(yes); then a pairwise run and its
P(A better). Screenshots go to var/screenshots/."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotation.projects import services as project_services
from annotation.rubrics import services as rubric_services
from annotation.rubrics.services import CriterionInput
from scoring.judges import services as judge_services
from scoring.runs.models import Judgment
from tests.browser.conftest import SHOTS, login
from tests.factories import PromptFactory, ResponseFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_local_run_shows_its_probabilities(page, live_server, settings, tiny_model_dir):  # type: ignore[no-untyped-def]
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.LOCAL_MODEL_DIRS = [str(Path(tiny_model_dir).parent)]
    SHOTS.mkdir(parents=True, exist_ok=True)
    owner = UserFactory(username="dr-local")
    project = project_services.project_create(name="Triage", slug="triage", owner=owner)
    endpoint = judge_services.endpoint_save(
        project=project,
        actor=owner,
        data={"name": "tiny local", "backend": "local", "model_path": str(tiny_model_dir),
              "device": "cpu"},
    )  # fmt: skip
    rubric_services.rubric_create(
        project=project,
        title="Every answer",
        author=owner,
        criteria=[
            CriterionInput(text="Advises urgent care for red flags", points=8),
            CriterionInput(text="Recommends an unproven remedy", points=-5),
        ],
    )
    for i in range(3):
        prompt = PromptFactory(project=project, external_id=f"case-{i}")
        for source in ("model-a", "model-b"):
            ResponseFactory(prompt=prompt, source=source, content=f"{source} answer {i}")
    login(page, live_server, "dr-local")
    page.goto(f"{live_server.url}/p/triage/runs/")
    page.select_option("select[name=endpoint]", str(endpoint.pk))
    page.select_option("select[name=mode]", "per_criterion")
    page.click("button[name=preview]")
    page.wait_for_selector("#preview")
    assert "a local model on the gpu queue" in page.inner_text("#preview")
    page.click("button[name=launch]")
    page.wait_for_selector("#progress >> text=Done")
    page.wait_for_selector("#response-scores")
    assert "Expected score" in page.inner_text("#response-scores thead")
    page.click("#response-scores tbody tr:first-child summary")
    page.wait_for_selector("#response-scores .verdicts ol")
    verdicts = page.inner_text("#response-scores .verdicts")
    assert "P(yes) 0." in verdicts
    first = Judgment.objects.order_by("pk").first()
    page.screenshot(path=str(SHOTS / "run_local.png"), full_page=True)
    assert first.probability is not None

    page.goto(f"{live_server.url}/p/triage/runs/")
    page.select_option("select[name=endpoint]", str(endpoint.pk))
    page.select_option("select[name=mode]", "pairwise")
    page.click("button[name=preview]")
    page.wait_for_selector("#preview")
    page.click("button[name=launch]")
    page.wait_for_selector("#progress >> text=Done")
    page.wait_for_selector("text=P(A better)")
    page.screenshot(path=str(SHOTS / "run_local_pairwise.png"), full_page=True)
