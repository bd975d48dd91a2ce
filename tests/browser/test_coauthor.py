"""Co-authoring in headless Chromium against the fake OpenAI-compatible server: every action
(draft, contrastive, refine, critique, nuggets, and a batch) yields a proposal that a
person accepts in the browser, making a new version with llm provenance; a malformed
answer shows an error and changes nothing. Screenshots go to var/screenshots/."""

from __future__ import annotations

import pytest

from annotation.projects import services as project_services
from annotation.prompts.models import PreferenceLabel
from annotation.rubrics import services as rubric_services
from annotation.rubrics.models import Rubric, RubricVersion
from annotation.rubrics.services import CriterionInput
from fakellm.config import Rule
from scoring.coauthoring.models import CoauthorSettings, Proposal
from scoring.judges import services as judge_services
from tests.browser.conftest import SHOTS, login
from tests.factories import MembershipFactory, PromptFactory, ResponseFactory, UserFactory
from tests.scoring.coauthoring.test_coauthor import BAD, GOOD, SCRIPTS

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def studio(settings, live_server, fake_llm):  # type: ignore[no-untyped-def]
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the job runs inside the request that starts it
    owner = UserFactory(username="dr-co")
    project = project_services.project_create(name="Cardiology", slug="cardio", owner=owner)
    judge_services.endpoint_save(
        project=project,
        actor=owner,
        data={"name": "fake", "base_url": fake_llm.url + "/v1", "model": "fake-judge"},
    )
    CoauthorSettings.objects.filter(project=project).update(refine_rounds=1)
    fake_llm.configure(rules=[rule for kind in SCRIPTS for rule in SCRIPTS[kind]])
    return project, owner


def accept_all(page) -> str:  # type: ignore[no-untyped-def]
    page.wait_for_selector("#coauthor .proposal")
    page.click("#coauthor .proposal button[value=accept_all]")
    notice = page.wait_for_selector(".msg.success >> text=Accepted as version")
    return notice.inner_text()


def test_each_action_is_proposed_and_accepted_in_the_browser(page, live_server, studio):
    SHOTS.mkdir(parents=True, exist_ok=True)
    project, owner = studio
    prompt = PromptFactory(
        project=project,
        external_id="chest-9",
        messages=[{"role": "user", "content": "Crushing chest pain for 20 minutes, I'm 58."}],
    )
    good = ResponseFactory(prompt=prompt, source="model-a", content=GOOD)
    bad = ResponseFactory(prompt=prompt, source="model-b", content=BAD)
    PreferenceLabel.objects.create(prompt=prompt, chosen=good, rejected=bad)
    rubric_services.rubric_create(
        project=project,
        prompt=prompt,
        title="Chest pain",
        author=owner,
        criteria=[
            CriterionInput(text="Advises calling emergency services", points=10),
            CriterionInput(text="Is helpful", points=2),
        ],
    )
    login(page, live_server, "dr-co")
    page.goto(f"{live_server.url}/p/cardio/prompts/{prompt.pk}/")
    page.wait_for_selector("#coauthor .coauthor-actions")

    # c) refine: split criterion 1 to tell the two responses apart.
    page.click("#coauthor button:text-is('Refine')")
    page.wait_for_selector("#coauthor .proposal")
    assert "B misses the driving warning" in page.inner_text("#coauthor .proposal")
    page.screenshot(path=str(SHOTS / "coauthor_proposal.png"), full_page=True)
    assert "version 2" in accept_all(page)
    page.wait_for_selector("#criteria-list >> text=Says not to drive oneself to hospital")

    # b) contrastive from the preference pair; it reproduces the label on the first try.
    page.click("#coauthor button:text-is('Contrastive')")
    page.wait_for_selector("#coauthor .proposal")
    assert "Reproduces the preference label" in page.inner_text("#coauthor .proposal")
    assert "version 3" in accept_all(page)

    # a) draft
    page.click("#coauthor button:text-is('Draft')")
    assert "version 4" in accept_all(page)
    page.wait_for_selector("#criteria-list >> text=Tells the user to call an ambulance")

    # d) critique: a rewrite of the vague "Is helpful".
    page.click("#coauthor button:text-is('Critique')")
    page.wait_for_selector("#coauthor .proposal ins")
    assert "version 5" in accept_all(page)

    # e) nuggets from a pasted reference passage.
    page.click("#coauthor summary:text('Nuggets from a reference')")
    page.fill("#coauthor textarea[name=reference]", "Chest pain with sweating: call 911.")
    page.click("#coauthor button:text-is('Extract nuggets')")
    assert "version 6" in accept_all(page)
    page.wait_for_selector("#criteria-list >> text=Heart attack symptoms need emergency care")
    page.screenshot(path=str(SHOTS / "coauthor_accepted.png"), full_page=True)

    rubric = Rubric.objects.get(prompt=prompt)
    assert rubric.current_version.number == 6
    by_text = {c.text: c for c in rubric.current_version.criteria.all()}
    # The critique rewrote criterion 2, which the refine split had made "Says not to drive…".
    assert "Says not to drive oneself to hospital" not in by_text
    for text in (
        "Directs the user to emergency care",
        "Tells the user to call an ambulance",
        "Explains why chest pain at 58 is an emergency",
        "Heart attack symptoms need emergency care",
    ):
        assert (by_text[text].provenance, by_text[text].provenance_model) == ("llm", "fake-judge")
    assert by_text["Advises calling emergency services"].provenance == "llm"  # the split's head
    assert all(
        v.author_model == "fake-judge"
        for v in RubricVersion.objects.filter(rubric=rubric, number__gt=1)
    )
    assert set(Proposal.objects.values_list("status", flat=True)) == {"accepted"}


def test_a_malformed_answer_shows_an_error_and_changes_nothing(page, live_server, studio, fake_llm):
    project, owner = studio
    prompt = PromptFactory(project=project, external_id="broken-1")
    fake_llm.configure(rules=[Rule("Write a rubric", '{"criteria": [{"text": "cut')])
    login(page, live_server, "dr-co")
    page.goto(f"{live_server.url}/p/cardio/prompts/{prompt.pk}/")
    page.wait_for_selector("#coauthor .coauthor-actions")
    page.click("#coauthor button:text-is('Draft')")
    page.wait_for_selector("#coauthor .msg.error")
    assert "Nothing was changed." in page.inner_text("#coauthor")
    assert page.locator("#coauthor .proposal").count() == 0
    assert not Rubric.objects.filter(prompt=prompt).exists()
    page.screenshot(path=str(SHOTS / "coauthor_error.png"))


def test_a_batch_is_previewed_launched_and_its_proposals_accepted(
    page, live_server, studio, fake_llm
):
    project, owner = studio
    MembershipFactory(project=project, user=UserFactory(username="ed"), role="editor")
    prompts = [PromptFactory(project=project, external_id=f"batch-{i}") for i in range(6)]
    login(page, live_server, "ed")
    page.goto(f"{live_server.url}/p/cardio/")
    page.click("nav.tabs >> text=Co-author batch")
    page.select_option("select[name=which]", "no_rubric")
    page.fill("input[name=limit]", "6")
    page.click("button[name=preview]")
    page.wait_for_selector("#preview")
    assert "Items" in page.inner_text("#preview")
    page.screenshot(path=str(SHOTS / "coauthor_batch.png"))
    page.click("button[name=launch]")
    page.wait_for_selector("#progress >> text=Done")
    assert page.locator("text=Waiting for review").count() == 6
    page.screenshot(path=str(SHOTS / "coauthor_job.png"))
    page.click("table.grid a >> text=batch-0")
    assert "version 1" in accept_all(page)
    rubric = Rubric.objects.get(prompt=prompts[0])
    assert rubric.current_version.author_model == "fake-judge"
    assert {c.provenance for c in rubric.current_version.criteria.all()} == {"llm"}
