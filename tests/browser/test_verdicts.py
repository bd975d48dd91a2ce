"""The editor's loop in headless Chromium: open a prompt graded by a run, read each
criterion's verdict per response, edit a criterion, re-grade the prompt, and see the
verdicts update. Screenshot: var/screenshots/prompt_verdicts.png (1440×900)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from annotation.projects import services as project_services
from annotation.rubrics import services as rubric_services
from annotation.rubrics.services import CriterionInput
from scoring.judges import services as judge_services
from tests.browser.conftest import SHOTS, login
from tests.factories import PromptFactory, ResponseFactory, UserFactory
from tests.scoring.runs.test_runs import MET_IF_A_TO_M

pytestmark = pytest.mark.django_db(transaction=True)


def test_edit_a_criterion_and_regrade_the_prompt(page, live_server, settings, fake_llm):  # type: ignore[no-untyped-def]
    settings.CELERY_TASK_ALWAYS_EAGER = True
    SHOTS.mkdir(parents=True, exist_ok=True)
    owner = UserFactory(username="dr-ada")
    project = project_services.project_create(name="Cardiology", slug="cardio", owner=owner)
    judge_services.endpoint_save(
        project=project, actor=owner,
        data={"name": "fake", "base_url": fake_llm.url + "/v1", "model": "fake-judge"},
    )  # fmt: skip
    prompt = PromptFactory(
        project=project, external_id="chest-1",
        messages=[{"role": "user", "content": "I have chest pain spreading to my left arm."}],
    )  # fmt: skip
    for source, text in (("model-a", "Call emergency services now."), ("model-b", "Rest.")):
        ResponseFactory(prompt=prompt, source=source, content=text)
    rubric = rubric_services.rubric_create(
        project=project, prompt=prompt, title="Chest pain", author=owner,
        criteria=[CriterionInput(text="Advises calling emergency services", points=8),
                  CriterionInput(text="Names aspirin", points=3)],
    )  # fmt: skip
    fake_llm.configure(rules=MET_IF_A_TO_M)

    page.set_viewport_size({"width": 1440, "height": 900})
    login(page, live_server, "dr-ada")
    page.goto(f"{live_server.url}/p/cardio/runs/")  # a run, launched as a person would
    page.select_option("select[name=mode]", "per_criterion")
    page.click("button[name=preview]")
    page.click("button[name=launch]")
    page.wait_for_selector("#progress >> text=Done")
    page.goto(f"{live_server.url}/p/cardio/prompts/{prompt.pk}/")
    page.wait_for_selector("#verdict-grid")
    assert page.locator("#verdict-grid td.verdict .met").count() == 2
    assert "met by none" in page.inner_text("#verdict-grid")  # "Names aspirin"

    # Edit "Names aspirin" so that it starts with a letter the fake judge meets, and save.
    key = str(rubric.current_version.criteria.get(text="Names aspirin").key)
    page.locator(f"#c-{key} [data-edit]").click()
    area = page.locator("li.criterion.editing textarea[name=text]")
    area.wait_for()
    page.wait_for_load_state("networkidle")  # the page's panels have finished loading
    area.fill("Mentions aspirin, unless allergic")
    expect(area).to_have_value("Mentions aspirin, unless allergic")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("!document.querySelector('li.criterion.editing')")
    page.click("#save-version")
    page.wait_for_selector("text=Saved as version 2")
    page.wait_for_selector("#verdicts >> text=changed since this run")
    page.click("#verdicts button:has-text('Re-grade this prompt')")
    page.wait_for_function(
        "document.querySelectorAll('#verdict-grid td.verdict .met').length === 4", timeout=20000
    )
    assert "changed since this run" not in page.inner_text("#verdicts")
    page.locator("#verdicts").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "prompt_verdicts.png"))

    # The rubric toolbar stays in view at the bottom of the page, and opens the add form.
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    toolbar = page.locator(".rubric-toolbar")
    box = toolbar.bounding_box()
    assert box is not None and 0 <= box["y"] < 900, box  # on screen, not scrolled away
    toolbar.locator("[data-open=add-card]").click()
    page.wait_for_function(
        "document.getElementById('add-card').open && "
        "document.activeElement === document.querySelector('#add-card textarea[name=text]')"
    )
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / "prompt_editor_wide.png"))
