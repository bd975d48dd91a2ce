"""The rubric editor in headless Chromium, as an expert uses it: add criteria (mouse and
keyboard), reorder by drag and drop and by keyboard, save, edit, read the diff, submit,
approve as a reviewer; a reload keeps unsaved work; a conflicting save asks only about
the criterion both people changed. Screenshots go to var/screenshots/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from annotation.projects import services as project_services
from annotation.rubrics import services as rubric_services
from annotation.rubrics.models import Rubric, RubricVersion
from annotation.rubrics.services import CriterionInput
from tests.browser.conftest import SHOTS, login
from tests.factories import MembershipFactory, PromptFactory, ResponseFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def criterion_texts(page) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        t.strip() for t in page.locator("#criteria-list > li[data-key] .ctext").all_inner_texts()
    ]


def wait_for_swap(page, predicate: str) -> None:  # type: ignore[no-untyped-def]
    """Until ``predicate`` holds and no htmx request is in flight: a drag moves the row in
    the page before the server has the new order, and the next action must follow the
    server's answer, as a person's does."""
    page.wait_for_function(
        f"({predicate}) && !document.querySelector('.htmx-request')", timeout=10_000
    )


def logout(page) -> None:  # type: ignore[no-untyped-def]
    page.click("header form button.link")
    page.wait_for_url(re.compile(r".*/login/.*|.*/$"))


def test_expert_writes_reorders_saves_edits_and_gets_approval(page, live_server):
    SHOTS.mkdir(parents=True, exist_ok=True)
    author = UserFactory(username="dr-lin")
    project = project_services.project_create(name="Cardiology", slug="cardio", owner=author)
    MembershipFactory(project=project, user=UserFactory(username="dr-rev"), role="reviewer")
    prompt = PromptFactory(
        project=project,
        external_id="chest-pain-7",
        messages=[
            {"role": "user", "content": "I'm 58 and have had crushing chest pain for 20 minutes."}
        ],
    )
    ResponseFactory(prompt=prompt, source="model-a", content="Take an antacid and rest.")

    login(page, live_server, "dr-lin")
    page.goto(f"{live_server.url}/p/cardio/prompts/{prompt.pk}/")
    page.wait_for_selector("#editor")
    assert "No criteria yet" in page.inner_text("#criteria-list")

    # 1. Add three criteria: two with the mouse, one from the keyboard (n, type, Ctrl+Enter).
    form = page.locator("#add-form")
    form.locator("textarea[name=text]").fill("Advises calling emergency services now")
    form.locator("input[name=points]").fill("10")
    form.locator("select[name=category]").select_option("essential")
    form.locator("button.primary").click()
    wait_for_swap(page, "document.querySelectorAll('#criteria-list > li[data-key]').length == 1")
    form = page.locator("#add-form")
    form.locator("textarea[name=text]").fill("Suggests an antacid first")
    form.locator("input[name=points]").fill("-5")
    form.locator("select[name=category]").select_option("pitfall")
    form.locator("button.primary").click()
    wait_for_swap(page, "document.querySelectorAll('#criteria-list > li[data-key]').length == 2")
    page.locator("body").click(position={"x": 5, "y": 300})
    page.keyboard.press("Escape")
    page.keyboard.press("n")
    assert page.evaluate("document.activeElement.closest('#add-form') !== null")
    page.keyboard.type("Asks whether the pain spreads to the arm or jaw")
    page.keyboard.press("Control+Enter")
    wait_for_swap(page, "document.querySelectorAll('#criteria-list > li[data-key]').length == 3")
    assert criterion_texts(page) == [
        "Advises calling emergency services now",
        "Suggests an antacid first",
        "Asks whether the pain spreads to the arm or jaw",
    ]
    assert "Unsaved changes" in page.inner_text("#draft-banner")

    # Unsaved work survives a reload.
    page.reload()
    page.wait_for_selector("#criteria-list > li[data-key]")
    assert len(criterion_texts(page)) == 3 and page.is_visible("#draft-banner")

    # 2. Reorder: drag the third criterion above the second, then move it up by keyboard.
    rows = page.locator("#criteria-list > li[data-key]")
    source = rows.nth(2).locator(".handle").bounding_box()
    target = rows.nth(1).bounding_box()
    page.mouse.move(source["x"] + 4, source["y"] + 4)
    page.mouse.down()
    page.mouse.move(source["x"] + 4, target["y"] + 6, steps=12)
    page.mouse.move(source["x"] + 4, target["y"] + 4, steps=4)
    page.mouse.up()
    wait_for_swap(
        page,
        "document.querySelector('#criteria-list > li[data-key]:nth-child(2) .ctext')"
        ".innerText.startsWith('Asks whether')",
    )
    page.locator("#criteria-list > li[data-key]").nth(1).click()
    page.keyboard.press("Alt+ArrowUp")
    wait_for_swap(
        page,
        "document.querySelector('#criteria-list > li[data-key] .ctext')"
        ".innerText.startsWith('Asks whether')",
    )
    assert criterion_texts(page) == [
        "Asks whether the pain spreads to the arm or jaw",
        "Advises calling emergency services now",
        "Suggests an antacid first",
    ]

    # 3. Save with Ctrl+Enter.
    page.fill("#save-form input[name=note]", "First draft")
    page.locator("#criteria-list > li[data-key]").first.click()
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("text=Saved as version 1.")
    rubric = Rubric.objects.get(prompt=prompt)
    v1 = list(rubric.current_version.criteria.order_by("position").values_list("text", "points"))
    assert v1 == [
        ("Asks whether the pain spreads to the arm or jaw", 1.0),
        ("Advises calling emergency services now", 10.0),
        ("Suggests an antacid first", -5.0),
    ]

    # 4. Edit one: select it with j, press e, change the text, Ctrl+Enter, then save.
    page.locator("#criteria-list > li[data-key]").first.click()
    page.keyboard.press("j")
    page.keyboard.press("e")
    page.wait_for_selector("li.criterion.editing textarea[name=text]")
    editing = page.locator("li.criterion.editing textarea[name=text]")
    assert page.evaluate("document.activeElement.name") == "text"
    editing.fill("Advises calling emergency services within minutes")
    page.screenshot(path=str(SHOTS / "rubric_editor_editing.png"))
    page.keyboard.press("Control+Enter")
    wait_for_swap(page, "!document.querySelector('li.criterion.editing')")
    assert "changed, unsaved" in page.inner_text("#criteria-list")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("text=Saved as version 2.")

    # 5. The diff shows the word-level change.
    page.click("#editor nav >> text=Diff")
    page.wait_for_selector("ol.diff")
    assert page.locator("ol.diff ins").first.inner_text().strip() == "within minutes"
    assert page.locator("ol.diff del").first.inner_text().strip() == "now"
    page.screenshot(path=str(SHOTS / "rubric_editor_diff.png"))

    # 6. Submit for review.
    page.goto(f"{live_server.url}/p/cardio/prompts/{prompt.pk}/")
    page.click("text=Submit v2 for review")
    page.wait_for_selector("#editor .status-in_review")
    page.screenshot(path=str(SHOTS / "rubric_editor.png"), full_page=True)

    # 7. Approve as a reviewer, who has no edit controls.
    logout(page)
    login(page, live_server, "dr-rev")
    page.goto(f"{live_server.url}/p/cardio/prompts/{prompt.pk}/")
    assert page.locator("[data-edit]").count() == 0
    assert page.locator("#add-form").count() == 0
    page.click("text=Approve v2")
    page.wait_for_selector("#editor .status-approved")
    rubric.refresh_from_db()
    assert rubric.status == "approved" and rubric.approved_version.number == 2
    page.screenshot(path=str(SHOTS / "rubric_editor_approved.png"))


def test_fast_typing_after_each_add_lands_in_the_field_it_was_typed_into(page, live_server):
    """After an add, the new form takes focus once; typing the text and at once the points
    (no waits), twelve times in a row, gives each criterion exactly its text and points,
    although the near-duplicate panel loads inside the editor after every add."""
    author = UserFactory(username="dr-fast")
    project = project_services.project_create(name="Triage", slug="triage", owner=author)
    prompt = PromptFactory(project=project, external_id="fever-2")
    login(page, live_server, "dr-fast")
    page.goto(f"{live_server.url}/p/triage/prompts/{prompt.pk}/")
    page.wait_for_selector("#add-form")
    page.locator("#add-form textarea[name=text]").click()

    expected = [(f"Asks about symptom number {i}", -(i + 1)) for i in range(12)]
    for i, (text, points) in enumerate(expected):
        # The form that came back with the previous add takes the focus.
        wait_for_swap(page, "document.activeElement.closest('#add-form textarea') !== null")
        page.locator("#add-form textarea[name=text]").fill(text)
        page.locator("#add-form input[name=points]").fill(str(points))
        page.keyboard.press("Control+Enter")
        wait_for_swap(
            page, f"document.querySelectorAll('#criteria-list > li[data-key]').length == {i + 1}"
        )

    assert criterion_texts(page) == [text for text, _ in expected]
    shown = [p.strip() for p in page.locator("#criteria-list .points").all_inner_texts()]
    assert shown == [str(points) for _, points in expected]
    draft = Rubric.objects.get(prompt=prompt).drafts.get()
    assert [(c["text"], c["points"]) for c in draft.criteria] == expected


def test_conflicting_save_asks_only_about_the_shared_criterion(page, live_server):
    SHOTS.mkdir(parents=True, exist_ok=True)
    me = UserFactory(username="dr-me")
    other = UserFactory(username="dr-other")
    project = project_services.project_create(name="Pharmacy", slug="pharm", owner=me)
    MembershipFactory(project=project, user=other, role="editor")
    prompt = PromptFactory(project=project, external_id="dose-1")
    rubric = rubric_services.rubric_create(
        project=project,
        prompt=prompt,
        title="Dosing",
        author=me,
        criteria=[
            CriterionInput(text="States the maximum daily dose", points=5),
            CriterionInput(text="Mentions liver risk", points=3),
            CriterionInput(text="Asks about alcohol use", points=2),
        ],
    )
    keys = [str(c.key) for c in rubric.current_version.criteria.order_by("position")]

    login(page, live_server, "dr-me")
    page.goto(f"{live_server.url}/p/pharm/prompts/{prompt.pk}/")
    page.locator(f"#c-{keys[0]} [data-edit]").click()
    area = page.locator("li.criterion.editing textarea[name=text]")
    area.wait_for()
    page.wait_for_load_state("networkidle")  # the editor's panels have finished loading
    area.fill("States 4 g as the daily maximum")
    expect(area).to_have_value("States 4 g as the daily maximum")
    page.keyboard.press("Control+Enter")
    wait_for_swap(page, "!document.querySelector('li.criterion.editing')")
    page.locator(f"#c-{keys[2]} [data-delete]").click()
    wait_for_swap(page, "document.querySelectorAll('#criteria-list > li[data-key]').length == 2")

    # Meanwhile someone else saves a change to the same first criterion and another one.
    rubric_services.rubric_version_create(
        rubric=rubric,
        author=other,
        criteria=[
            CriterionInput(text="States 3 g as the daily maximum", points=5, key=keys[0]),
            CriterionInput(text="Mentions liver damage risk", points=4, key=keys[1]),
            CriterionInput(text="Asks about alcohol use", points=2, key=keys[2]),
        ],
    )
    page.click("#save-version")
    page.wait_for_selector("#conflicts")
    conflict_text = page.inner_text("#conflicts")
    assert conflict_text.count("Theirs (v2)") == 1  # only the criterion both changed
    assert "States 3 g" in conflict_text and "States 4 g" in conflict_text
    # Their change to another criterion is already merged into my draft.
    assert "Mentions liver damage risk" in page.inner_text("#criteria-list")
    page.screenshot(path=str(SHOTS / "rubric_conflict.png"), full_page=True)
    page.check(f"input[name='choice-{keys[0]}'][value='mine']")
    page.click("#conflicts button.primary")
    page.wait_for_selector("text=Conflicts settled")
    page.click("#save-version")
    page.wait_for_selector("text=Saved as version 3.")
    v3 = RubricVersion.objects.get(rubric=rubric, number=3)
    assert list(v3.criteria.order_by("position").values_list("text", flat=True)) == [
        "States 4 g as the daily maximum",
        "Mentions liver damage risk",
    ]


def test_viewer_sees_no_edit_controls(page, live_server):
    owner = UserFactory(username="dr-own")
    project = project_services.project_create(name="Derm", slug="derm", owner=owner)
    MembershipFactory(project=project, user=UserFactory(username="vi"), role="viewer")
    prompt = PromptFactory(project=project)
    rubric_services.rubric_create(
        project=project,
        prompt=prompt,
        title="r",
        criteria=[CriterionInput(text="Recommends sunscreen", points=2)],
    )
    login(page, live_server, "vi")
    page.goto(f"{live_server.url}/p/derm/prompts/{prompt.pk}/")
    assert "Recommends sunscreen" in page.inner_text("#criteria-list")
    for selector in ("[data-edit]", ".handle", "#add-form", "#save-form", ".comment-form"):
        assert page.locator(selector).count() == 0, selector
    page.keyboard.press("n")  # shortcuts that edit do nothing for a viewer
    assert page.locator("#add-form").count() == 0
    page.keyboard.press("?")
    assert page.is_visible("#shortcuts")


def test_keys_act_on_the_form_being_typed_in(page, live_server):
    owner = UserFactory(username="dr-keys")
    project = project_services.project_create(name="Neuro", slug="neuro", owner=owner)
    prompt = PromptFactory(project=project)
    rubric = rubric_services.rubric_create(
        project=project,
        prompt=prompt,
        title="r",
        author=owner,
        criteria=[
            CriterionInput(text="Asks about headache onset", points=3),
            CriterionInput(text="Screens for red flags", points=5),
        ],
    )
    keys = [str(c.key) for c in rubric.current_version.criteria.order_by("position")]
    login(page, live_server, "dr-keys")
    page.goto(f"{live_server.url}/p/neuro/prompts/{prompt.pk}/")
    page.locator(f"#c-{keys[0]} [data-move-down]").click()  # an unsaved change, savable
    page.wait_for_selector("#draft-banner")
    assert page.is_enabled("#save-version")

    # Ctrl+Enter in a comment posts the comment; it does not save a version.
    page.locator(f"#c-{keys[0]} details.comments summary").click()
    page.locator(f"#c-{keys[0]} .comment-form textarea").fill("Onset and tempo, please")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector(f"#c-{keys[0]} .comment")
    assert RubricVersion.objects.filter(rubric=rubric).count() == 1
    assert page.is_visible("#draft-banner")

    # Escape in the add form while a criterion edit is open keeps what was typed there.
    page.locator(f"#c-{keys[0]} [data-edit]").click()
    page.wait_for_selector("li.criterion.editing")
    page.keyboard.press("Escape")  # from inside the edit: cancels it
    wait_for_swap(page, "!document.querySelector('li.criterion.editing')")
    page.locator(f"#c-{keys[0]} [data-edit]").click()
    page.wait_for_selector("li.criterion.editing")
    page.click("#add-card summary")
    page.fill("#add-form textarea[name=text]", "Half-written criterion")
    page.keyboard.press("Escape")
    assert page.is_visible("li.criterion.editing")
    assert page.input_value("#add-form textarea[name=text]") == "Half-written criterion"
