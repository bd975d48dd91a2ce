"""Near-duplicate criteria in the rubric editor, in headless Chromium with the real packaged
embedding model: the panel polls while the criteria are embedded, then warns about a
paraphrase within the rubric and one in another prompt's rubric; Merge keeps one criterion
in the person's draft and the editor reloads. Screenshots go to var/screenshots/."""

from __future__ import annotations

import pytest

from annotation.projects import services as project_services
from annotation.rubrics import services as rubric_services
from annotation.rubrics.models import RubricDraft
from annotation.rubrics.services import CriterionInput
from tests.browser.conftest import SHOTS, login
from tests.factories import PromptFactory, UserFactory
from tests.scoring.judges.test_embeddings import DISTINCT, RAW_MILK, VIRUSES

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_warned_pair_is_merged_in_the_browser(page, live_server, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the embedding task runs inside the request
    SHOTS.mkdir(parents=True, exist_ok=True)
    owner = UserFactory(username="dr-dup")
    project = project_services.project_create(name="Public health", slug="health", owner=owner)
    prompt = PromptFactory(project=project, external_id="milk-7")
    criteria = [(DISTINCT[1], 8), (RAW_MILK, 6), (DISTINCT[7], 5), (DISTINCT[5], 3)]
    rubric = rubric_services.rubric_create(
        project=project,
        prompt=prompt,
        title="Raw milk",
        author=owner,
        criteria=[CriterionInput(text=t, points=p) for t, p in criteria],
    )
    other = PromptFactory(project=project, external_id="virus-7")
    rubric_services.rubric_create(
        project=project,
        prompt=other,
        title="Viruses",
        author=owner,
        criteria=[CriterionInput(text=VIRUSES, points=4)],
    )

    login(page, live_server, "dr-dup")
    page.goto(f"{live_server.url}/p/health/prompts/{prompt.pk}/")
    page.wait_for_selector("#duplicates >> text=(pending)")  # first load: being embedded
    pair = page.wait_for_selector("#duplicates .dup-pair[data-within]", timeout=30_000)
    text = pair.inner_text()
    assert DISTINCT[1] in text and RAW_MILK in text and "cosine 0.9" in text
    across = page.locator("#duplicates .dup-pair[data-across]")
    assert VIRUSES in across.inner_text()
    assert (
        across.locator("a.tag")
        .get_attribute("href")
        .startswith(f"/p/health/prompts/{other.pk}/#c-")
    )
    page.locator("#duplicates").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "near_duplicates.png"), full_page=True)

    page.click("#duplicates button:text-is('Merge: keep the first')")
    page.wait_for_selector("#draft-banner")  # the editor reloaded with the person's draft
    page.wait_for_function(
        "document.querySelectorAll('#criteria-list > li[data-key]').length === 3"
    )
    texts = page.locator("#criteria-list > li[data-key] .ctext").all_inner_texts()
    assert [t.strip() for t in texts] == [DISTINCT[1], DISTINCT[7], DISTINCT[5]]
    page.wait_for_selector("#duplicates .dup-pair[data-across]")  # the fresh panel
    assert page.locator("#duplicates .dup-pair[data-within]").count() == 0
    page.screenshot(path=str(SHOTS / "near_duplicates_merged.png"), full_page=True)
    draft = RubricDraft.objects.get(rubric=rubric, user=owner)
    assert [c["text"] for c in draft.criteria] == [DISTINCT[1], DISTINCT[7], DISTINCT[5]]
