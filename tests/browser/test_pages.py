"""The main pages in headless Chromium: navigate as a person would, filter the prompt
table (htmx), open a prompt, import a file; screenshots go to var/screenshots/."""

from __future__ import annotations

import pytest

from annotation.projects import services as project_services
from annotation.prompts import services as prompt_services
from annotation.rubrics import services as rubric_services
from tests.browser.conftest import SHOTS, login
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_expert_navigates_filters_and_imports(page, live_server, healthbench_path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    user = UserFactory(username="dr-ada")
    project = project_services.project_create(name="HealthBench sample", slug="hb", owner=user)
    prompt_services.data_import(project=project, path=healthbench_path)
    MembershipFactory(project=project, user=UserFactory(username="viewer-vic"), role="viewer")

    login(page, live_server, "dr-ada")
    page.screenshot(path=str(SHOTS / "project_list.png"), full_page=True)
    page.click("text=HealthBench sample")
    page.wait_for_selector("#prompt-table")
    assert "250 prompts" in page.inner_text("#prompt-table")
    page.screenshot(path=str(SHOTS / "project.png"))

    # Typing in the search box refreshes only the table (htmx) and updates the URL.
    page.fill("input[name=q]", "pregnan")
    page.wait_for_function(
        "!document.querySelector('#prompt-table').innerText.includes('250 prompts')"
    )
    assert "q=pregnan" in page.url
    count = int(page.inner_text("#prompt-table p.muted").split()[0])
    assert 0 < count < 250

    page.click("#prompt-table tbody tr:first-child td a")
    page.wait_for_selector(".criteria")
    assert page.locator(".criterion").count() >= 2
    page.screenshot(path=str(SHOTS / "prompt.png"), full_page=False)

    page.click("nav.tabs >> text=Import")
    bad = SHOTS.parent / "broken.jsonl"
    bad.write_text('{"prompt": [{"role": "user", "content": "hi"}], "rubrics": []}\n{oops\n')
    page.set_input_files("input[name=file]", str(bad))
    page.click("button.primary")
    page.wait_for_selector(".report.bad")
    assert "line" in page.inner_text(".report").lower() or "Line" in page.inner_text(".report")
    page.screenshot(path=str(SHOTS / "import.png"))

    page.click("nav.tabs >> text=Members")
    assert "viewer-vic" in page.inner_text("table")
    page.screenshot(path=str(SHOTS / "members.png"))


def test_history_and_diff_pages(page, live_server):
    from annotation.rubrics.services import CriterionInput
    from tests.factories import PromptFactory

    SHOTS.mkdir(parents=True, exist_ok=True)
    user = UserFactory(username="dr-grace")
    project = project_services.project_create(name="Cardiology", slug="cardio", owner=user)
    rubric = rubric_services.rubric_create(
        project=project,
        prompt=PromptFactory(project=project, external_id="chest-pain-1"),
        title="Chest pain triage",
        author=user,
        criteria=[
            CriterionInput(
                text="Advises calling emergency services", points=10, category="essential"
            ),
            CriterionInput(text="Asks how long the pain has lasted", points=3),
            CriterionInput(text="Suggests an antacid first", points=-4, category="pitfall"),
        ],
    )
    keys = [c.key for c in rubric.current_version.criteria.order_by("position")]
    rubric_services.rubric_version_create(
        rubric=rubric,
        author=user,
        note="Sharper triage wording",
        criteria=[
            CriterionInput(
                text="Advises calling emergency services at once",
                points=8,
                category="essential",
                key=keys[0],
            ),
            CriterionInput(
                text="Suggests an antacid first", points=-4, category="pitfall", key=keys[2]
            ),
            CriterionInput(text="Asks about radiating arm or jaw pain", points=5),
        ],
    )
    login(page, live_server, "dr-grace")
    page.goto(f"{live_server.url}/p/cardio/rubrics/{rubric.pk}/history/")
    assert "Sharper triage wording" in page.inner_text("table")
    page.click("text=diff")
    page.wait_for_selector("ol.diff")
    assert page.locator("ol.diff ins").first.inner_text().strip() == "at once"
    page.screenshot(path=str(SHOTS / "rubric_diff.png"))


def test_a_refused_change_is_explained_on_the_page_it_came_from(page, live_server):
    """The last owner cannot demote themselves: the Members page comes back with the
    reason in its message area, and the role is unchanged."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    owner = UserFactory(username="dr-ada")
    project_services.project_create(name="Cardiology", slug="cardio", owner=owner)
    login(page, live_server, "dr-ada")
    page.goto(f"{live_server.url}/p/cardio/members/")
    page.select_option("select[aria-label='Role of dr-ada']", "viewer")
    page.click("button[name=action][value=role]")
    page.wait_for_selector("#flash .msg.error")
    assert "/p/cardio/members/" in page.url
    assert "owner" in page.inner_text("#flash").lower()
    assert "your role: owner" in page.inner_text("nav.tabs")
    page.screenshot(path=str(SHOTS / "members_refused.png"))


def test_an_owner_changes_the_project_settings(page, live_server):
    SHOTS.mkdir(parents=True, exist_ok=True)
    owner = UserFactory(username="dr-ada")
    project_services.project_create(name="Cardiology", slug="cardio", owner=owner)
    login(page, live_server, "dr-ada")
    page.goto(f"{live_server.url}/p/cardio/")
    page.click("nav.tabs >> text=Settings")
    page.fill("textarea[name=guidelines]", "Cite the ESC guideline where one applies.")
    page.check("input[name=allow_self_approval]")
    page.click("#project-settings button.primary")
    page.wait_for_selector("#flash .msg")
    assert "Settings saved." in page.inner_text("#flash")
    assert page.is_checked("input[name=allow_self_approval]")
    page.screenshot(path=str(SHOTS / "settings.png"))


def test_an_owner_makes_an_account_for_a_colleague_who_then_approves(page, live_server, browser):  # type: ignore[no-untyped-def]
    from annotation.rubrics import workflow
    from annotation.rubrics.services import CriterionInput
    from tests.factories import PromptFactory

    SHOTS.mkdir(parents=True, exist_ok=True)
    owner = UserFactory(username="dr-ada")
    project = project_services.project_create(name="Cardiology", slug="cardio", owner=owner)
    prompt = PromptFactory(project=project, external_id="chest-1")
    rubric = rubric_services.rubric_create(
        project=project, prompt=prompt, title="Chest pain", author=owner,
        criteria=[CriterionInput(text="Advises calling emergency services", points=8)],
    )  # fmt: skip
    workflow.rubric_submit_for_review(rubric=rubric, actor=owner)

    login(page, live_server, "dr-ada")
    page.goto(f"{live_server.url}/p/cardio/members/")
    page.fill("#create-account input[name=username]", "dr-lee")
    page.select_option("#create-account select[name=role]", "reviewer")
    page.click("#create-account button.primary")
    page.wait_for_selector("#new-account")
    link = page.input_value("#new-account input")
    page.screenshot(path=str(SHOTS / "members_new_account.png"))

    colleague = browser.new_page()  # a browser of their own: no session of the owner's
    colleague.goto(link)
    colleague.fill("input[name=new_password1]", "a long Passphrase 7")
    colleague.fill("input[name=new_password2]", "a long Passphrase 7")
    colleague.click("#set-password button.primary")
    colleague.wait_for_url(f"{live_server.url}/login/")
    colleague.fill("input[name=username]", "dr-lee")
    colleague.fill("input[name=password]", "a long Passphrase 7")
    colleague.click("button.primary")
    colleague.wait_for_url(f"{live_server.url}/")
    colleague.goto(f"{live_server.url}/p/cardio/prompts/{prompt.pk}/")
    colleague.click("button.approve")
    colleague.wait_for_selector("text=Approved: this version is now the one exports use.")
    assert "your role: reviewer" in colleague.inner_text("nav.tabs")
    # A reviewer sees only the tabs they can use, and every one of them opens.
    tabs = colleague.eval_on_selector_all(
        "nav.tabs a", "links => links.map(a => [a.textContent.trim(), a.href])"
    )
    names = [name for name, _ in tabs]
    # Settings reads the guidelines (owners edit them); no Import, Judges or Co-author batch.
    assert names == [
        "Prompts",
        "Members",
        "Settings",
        "Runs",
        "Reviews",
        "Agreement",
        "Analytics",
        "Exports",
    ]
    for name, href in tabs:
        answer = colleague.goto(href)
        assert answer is not None and answer.status == 200, (name, answer and answer.status)
    colleague.close()
