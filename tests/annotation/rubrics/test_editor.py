"""The rubric editor pages: per-person drafts that survive a reload, saving as versions,
merging with a version saved meanwhile, conflicts, comments, workflow, import/export, and
who may do what."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from annotation.projects import services as project_services
from annotation.projects.models import AuditEvent
from annotation.prompts.importers.parsers import parse_healthbench
from annotation.rubrics import comments as rubric_comments
from annotation.rubrics import services as rubric_services
from annotation.rubrics import workflow as rubric_workflow
from annotation.rubrics.models import (
    Criterion,
    CriterionComment,
    Rubric,
    RubricDraft,
    RubricVersion,
)
from annotation.rubrics.services import CriterionInput
from tests.factories import PromptFactory, ResponseFactory, UserFactory

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def prompt(project):  # type: ignore[no-untyped-def]
    prompt = PromptFactory(
        project=project,
        external_id="chest-1",
        messages=[{"role": "user", "content": "My chest hurts, what should I do?"}],
    )
    ResponseFactory(prompt=prompt, source="gpt-x", content="Call emergency services.")
    return prompt


@pytest.fixture
def rubric(project, prompt, editor):  # type: ignore[no-untyped-def]
    return rubric_services.rubric_create(
        project=project,
        prompt=prompt,
        title="Chest pain",
        author=editor,
        criteria=[
            CriterionInput(text="Advises calling emergency services", points=10),
            CriterionInput(text="Asks how long the pain has lasted", points=3),
            CriterionInput(
                text="Suggests an antacid first",
                points=-4,
                category="pitfall",
                provenance="llm",
                provenance_model="judge-1",
            ),
        ],
    )


def login(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


def draft_url(rubric: Rubric, op: str) -> str:
    return reverse("annotation:rubric_draft", args=[rubric.project.slug, rubric.pk, op])


def url(name: str, rubric: Rubric, *extra: object) -> str:
    return reverse(f"annotation:{name}", args=[rubric.project.slug, rubric.pk, *extra])


def keys(rubric: Rubric) -> list[str]:
    rubric.refresh_from_db()
    return [str(c.key) for c in rubric.current_version.criteria.order_by("position")]


def page(client: Client, prompt) -> str:  # type: ignore[no-untyped-def]
    response = client.get(
        reverse("annotation:prompt_detail", args=[prompt.project.slug, prompt.pk])
    )
    assert response.status_code == 200
    return response.content.decode()


def test_edits_are_kept_as_a_draft_until_saved(project, prompt, rubric, editor):
    client = login(editor)
    k = keys(rubric)
    r = client.post(
        draft_url(rubric, "add"),
        {"text": "Mentions aspirin", "points": "2", "category": "important", "tags": "a, b"},
        **HX,
    )
    assert r.status_code == 200 and 'id="editor"' in r.content.decode()
    assert "<html" not in r.content.decode()  # a fragment, not a page
    client.post(draft_url(rubric, "update"), {"key": k[0], "text": "Advises calling 911"}, **HX)
    client.post(draft_url(rubric, "move"), {"key": k[2], "direction": "up"}, **HX)
    draft = RubricDraft.objects.get(rubric=rubric, user=editor)
    assert [c["text"] for c in draft.criteria] == [
        "Advises calling 911",
        "Suggests an antacid first",
        "Asks how long the pain has lasted",
        "Mentions aspirin",
    ]
    assert RubricVersion.objects.filter(rubric=rubric).count() == 1  # nothing saved yet

    html = page(client, prompt)  # a reload shows the draft
    assert "Unsaved changes" in html and "Advises calling 911" in html
    assert "added, unsaved" in html and "changed, unsaved" in html

    r = client.post(url("rubric_save", rubric), {"note": "Sharper wording"}, **HX)
    assert "Saved as version 2." in r.content.decode()
    assert not RubricDraft.objects.filter(rubric=rubric).exists()
    v2 = RubricVersion.objects.get(rubric=rubric, number=2)
    assert (v2.author, v2.note, v2.parent.number) == (editor, "Sharper wording", 1)
    rows = list(v2.criteria.order_by("position"))
    assert [str(c.key) for c in rows[:3]] == [k[0], k[2], k[1]]  # keys follow the criteria
    assert (rows[3].points, rows[3].category, rows[3].tags) == (2.0, "important", ["a", "b"])
    assert AuditEvent.objects.filter(action="rubric.version", data__version=2).exists()


def test_undoing_every_change_leaves_no_draft(project, prompt, rubric, editor):
    client = login(editor)
    k = keys(rubric)
    client.post(draft_url(rubric, "move"), {"key": k[1], "direction": "down"}, **HX)
    assert RubricDraft.objects.filter(rubric=rubric).exists()
    client.post(draft_url(rubric, "move"), {"key": k[1], "direction": "up"}, **HX)
    assert not RubricDraft.objects.filter(rubric=rubric).exists()
    assert "Unsaved changes" not in page(client, prompt)


def test_drafts_are_per_person(project, prompt, rubric, editor, owner):
    login(editor).post(draft_url(rubric, "delete"), {"key": keys(rubric)[0]}, **HX)
    assert "Advises calling emergency services" in page(login(owner), prompt)
    assert "Unsaved changes" not in page(login(owner), prompt)


def test_duplicate_reorder_paste_and_discard(project, prompt, rubric, editor):
    client = login(editor)
    k = keys(rubric)
    client.post(draft_url(rubric, "duplicate"), {"key": k[0]}, **HX)
    draft = RubricDraft.objects.get(rubric=rubric)
    dup = draft.criteria[1]["key"]
    assert draft.criteria[1]["text"] == draft.criteria[0]["text"] and dup not in k
    order = [k[2], dup, k[1], k[0]]
    client.post(draft_url(rubric, "reorder"), {"keys": ",".join(order)}, **HX)
    assert [c["key"] for c in RubricDraft.objects.get(rubric=rubric).criteria] == order
    r = client.post(draft_url(rubric, "paste"), {"text": "[2] Is calm\n[-1] Uses jargon"}, **HX)
    assert "Same text as another criterion" in r.content.decode()  # the duplicate
    assert 'id="save-version" disabled' in r.content.decode()  # a hard error blocks saving
    assert len(RubricDraft.objects.get(rubric=rubric).criteria) == 6
    r = client.post(url("rubric_save", rubric), {}, **HX)
    assert "Same text as another criterion" in r.content.decode()
    assert RubricVersion.objects.filter(rubric=rubric).count() == 1
    client.post(draft_url(rubric, "discard"), {}, **HX)
    assert not RubricDraft.objects.exists()


def test_bad_paste_changes_nothing_and_says_which_line(project, prompt, rubric, editor):
    client = login(editor)
    r = client.post(draft_url(rubric, "paste"), {"text": "[3] ok\n[x] bad"}, **HX)
    assert "Line 2: the points must be a number" in r.content.decode()
    assert not RubricDraft.objects.exists()


def test_bad_edit_keeps_the_form_open_with_what_was_typed(project, prompt, rubric, editor):
    client = login(editor)
    k = keys(rubric)
    r = client.post(
        draft_url(rubric, "update"), {"key": k[0], "text": "Typed text", "points": "ten"}, **HX
    ).content.decode()
    assert "Points must be a number, not “ten”" in r
    assert 'class="criterion editing"' in r and "Typed text" in r
    r = client.post(draft_url(rubric, "add"), {"text": "", "points": "1"}, **HX).content.decode()
    assert "needs some text" in r and "add-card" in r
    assert not RubricDraft.objects.exists()


def test_editing_form_opens_for_one_criterion(project, prompt, rubric, editor):
    k = keys(rubric)
    r = login(editor).get(url("rubric_editor", rubric) + f"?editing={k[1]}").content.decode()
    assert r.count('class="criterion editing"') == 1
    assert "Asks how long the pain has lasted</textarea>" in r


def test_first_edit_of_a_prompt_without_rubric_starts_one(project, editor):
    prompt = PromptFactory(project=project)
    client = login(editor)
    html = page(client, prompt)
    assert "No criteria yet" in html and "add-form" in html
    start = reverse("annotation:prompt_rubric_start", args=[project.slug, prompt.pk])
    r = client.post(start, {"op": "add", "text": "Is accurate", "points": "5"}, **HX)
    assert r.status_code == 200
    rubric = Rubric.objects.get(prompt=prompt)
    assert rubric.current_version is None and rubric.title == f"Rubric for {prompt.external_id}"
    client.post(start, {"op": "paste", "text": "Is kind"}, **HX)  # the same rubric again
    assert Rubric.objects.filter(prompt=prompt).count() == 1
    client.post(url("rubric_save", rubric), {}, **HX)
    rubric.refresh_from_db()
    assert rubric.current_version.number == 1
    assert list(rubric.current_version.criteria.values_list("text", flat=True)) == [
        "Is accurate",
        "Is kind",
    ]


def test_project_wide_rubric_is_created_edited_and_shown_on_prompts(
    project, prompt, rubric, editor
):
    client = login(editor)
    r = client.post(
        reverse("annotation:project_rubric_create", args=[project.slug]), {"title": "Tone"}
    )
    wide = Rubric.objects.get(project=project, prompt__isnull=True)
    assert r.url == reverse("annotation:rubric_page", args=[project.slug, wide.pk])
    client.post(draft_url(wide, "add"), {"text": "Is never condescending", "points": "2"}, **HX)
    client.post(url("rubric_save", wide), {}, **HX)
    assert "Tone" in client.get(r.url).content.decode()
    html = page(client, prompt)
    assert "Project-wide:" in html and "Is never condescending" in html
    assert "Advises calling emergency services" in html
    # A prompt rubric's own page is the prompt's page.
    assert client.get(url("rubric_page", rubric)).url.endswith(f"/prompts/{prompt.pk}/")


def test_save_on_a_stale_base_merges_changes_to_different_criteria(
    project, prompt, rubric, editor, owner
):
    k = keys(rubric)
    mine, theirs = login(editor), login(owner)
    mine.post(draft_url(rubric, "update"), {"key": k[0], "text": "Advises calling 911"}, **HX)
    theirs.post(draft_url(rubric, "update"), {"key": k[1], "points": "4"}, **HX)
    theirs.post(url("rubric_save", rubric), {"note": "theirs"}, **HX)  # v2
    assert "was saved since you started" in page(mine, prompt)
    r = mine.post(url("rubric_save", rubric), {"note": "mine"}, **HX).content.decode()
    assert "Version 2 was saved while you edited" in r and "Saved as version 3." in r
    v3 = RubricVersion.objects.get(rubric=rubric, number=3)
    assert v3.note == "mine (merged with v2)" and v3.parent.number == 2
    got = {str(c.key): (c.text, c.points) for c in v3.criteria.all()}
    assert got[k[0]] == ("Advises calling 911", 10.0)
    assert got[k[1]] == ("Asks how long the pain has lasted", 4.0)


def test_conflicting_edits_ask_only_about_criteria_both_changed(
    project, prompt, rubric, editor, owner
):
    k = keys(rubric)
    mine, theirs = login(editor), login(owner)
    mine.post(draft_url(rubric, "update"), {"key": k[0], "text": "Mine: call 911"}, **HX)
    mine.post(draft_url(rubric, "update"), {"key": k[1], "points": "5"}, **HX)
    theirs.post(draft_url(rubric, "update"), {"key": k[0], "text": "Theirs: call 112"}, **HX)
    theirs.post(draft_url(rubric, "delete"), {"key": k[2]}, **HX)
    theirs.post(url("rubric_save", rubric), {}, **HX)  # v2

    r = mine.post(url("rubric_save", rubric), {}, **HX).content.decode()
    assert "choose for the 1 criterion you both changed" in r
    assert 'id="conflicts"' in r and "Mine: call 911" in r and "Theirs: call 112" in r
    assert RubricVersion.objects.filter(rubric=rubric).count() == 2  # nothing overwritten
    draft = RubricDraft.objects.get(rubric=rubric, user=editor)
    assert draft.base_number == 2 and [c["key"] for c in draft.conflicts] == [k[0]]
    assert k[2] not in [c["key"] for c in draft.criteria]  # their delete merged
    # Saving is refused until the person chooses.
    r = mine.post(url("rubric_save", rubric), {}, **HX).content.decode()
    assert "Choose a side" in r
    r = mine.post(url("rubric_resolve", rubric), {}, **HX).content.decode()
    assert "1 left" in r
    mine.post(url("rubric_resolve", rubric), {f"choice-{k[0]}": "theirs"}, **HX)
    r = mine.post(url("rubric_save", rubric), {}, **HX).content.decode()
    assert "Saved as version 3." in r
    v3 = {
        str(c.key): (c.text, c.points) for c in RubricVersion.objects.get(number=3).criteria.all()
    }
    assert v3 == {
        k[0]: ("Theirs: call 112", 10.0),
        k[1]: ("Asks how long the pain has lasted", 5.0),
    }


def test_model_written_criterion_edited_by_a_person_becomes_hybrid(project, prompt, rubric, editor):
    client = login(editor)
    k = keys(rubric)
    html = page(client, prompt)
    assert "llm · judge-1" in html  # the provenance badge names the model
    client.post(draft_url(rubric, "update"), {"key": k[2], "text": "Suggests antacids"}, **HX)
    client.post(url("rubric_save", rubric), {}, **HX)
    edited = Criterion.objects.get(version__number=2, key=k[2])
    assert (edited.provenance, edited.provenance_model) == ("hybrid", "judge-1")
    assert "hybrid · judge-1" in page(client, prompt)


def test_workflow_from_the_editor(project, prompt, rubric, editor, reviewer):
    wf = url("rubric_workflow", rubric)
    r = login(editor).post(wf, {"action": "submit"}, **HX).content.decode()
    assert "Submitted for review." in r
    r = login(reviewer).post(wf, {"action": "request_changes", "comment": ""}, **HX)
    assert "a comment is required" in r.content.decode()
    r = login(reviewer).post(wf, {"action": "approve"}, **HX).content.decode()
    assert "Approved" in r
    rubric.refresh_from_db()
    assert rubric.status == "approved" and rubric.approved_version.number == 1
    # Editing the approved rubric starts a new draft; v1 stays approved.
    client = login(editor)
    client.post(draft_url(rubric, "add"), {"text": "Mentions aspirin", "points": "2"}, **HX)
    client.post(url("rubric_save", rubric), {}, **HX)
    rubric.refresh_from_db()
    assert (rubric.status, rubric.current_version.number) == ("draft", 2)
    assert rubric.approved_version.number == 1


def test_comments_on_criteria_are_added_and_resolved(project, prompt, rubric, reviewer, viewer):
    k = keys(rubric)
    client = login(reviewer)
    r = client.post(url("rubric_comment", rubric), {"key": k[1], "text": "Too vague?"}, **HX)
    assert "Too vague?" in r.content.decode() and "1 open" in r.content.decode()
    comment = CriterionComment.objects.get()
    assert (str(comment.criterion_key), comment.version_number) == (k[1], 1)
    client.post(url("rubric_comment_resolve", rubric, comment.pk), {}, **HX)
    comment.refresh_from_db()
    assert comment.resolved_by == reviewer and comment.resolved_at is not None
    client.post(url("rubric_comment_resolve", rubric, comment.pk), {"reopen": "1"}, **HX)
    comment.refresh_from_db()
    assert comment.resolved_at is None
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"rubric.comment", "rubric.comment_resolve", "rubric.comment_reopen"} <= actions
    bad = client.post(url("rubric_comment", rubric), {"key": "nope", "text": "x"}, **HX)
    assert "not a criterion key" in bad.content.decode()
    assert (
        login(viewer).post(url("rubric_comment", rubric), {"key": k[1], "text": "hi"}).status_code
        == 403
    )
    assert CriterionComment.objects.count() == 1


def test_export_then_import_round_trips_and_keeps_keys(project, prompt, rubric, editor):
    client = login(editor)
    k = keys(rubric)
    r = client.get(url("rubric_export", rubric) + "?shape=healthbench")
    assert (
        r["Content-Disposition"] == f'attachment; filename="rubric-{rubric.pk}-v1-healthbench.json"'
    )
    record = json.loads(r.content)
    parsed = parse_healthbench(record, 1)  # the dataset importer reads it
    assert parsed.external_id == "chest-1" and len(parsed.criteria) == 3
    rar = json.loads(client.get(url("rubric_export", rubric) + "?shape=rar").content)
    assert rar["question"] == "My chest hurts, what should I do?"
    assert rar["rubric"][2]["description"] == "Pitfall Criteria: Suggests an antacid first"

    record["rubrics"][1]["criterion"] = "Asks when the pain started"
    record["rubrics"].reverse()
    client.post(draft_url(rubric, "import"), {"json": json.dumps(record)}, **HX)
    draft = RubricDraft.objects.get(rubric=rubric)
    assert [c["key"] for c in draft.criteria][0::2] == [k[2], k[0]]  # same text, same key
    assert draft.criteria[1]["key"] not in k  # changed text: a new criterion
    assert client.get(url("rubric_export", rubric) + "?shape=csv").status_code == 400


def test_bad_import_file_names_the_file_and_changes_nothing(project, prompt, rubric, editor):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("mine.json", b'{"rubrics": [\n{"criterion": "x", "points": }]}')
    r = login(editor).post(draft_url(rubric, "import"), {"file": upload}, **HX)
    assert "Nothing was imported. mine.json, line 2 column" in r.content.decode()
    assert not RubricDraft.objects.exists()


def test_viewer_sees_the_rubric_without_edit_controls(project, prompt, rubric, viewer):
    client = login(viewer)
    html = page(client, prompt)
    assert "Advises calling emergency services" in html
    for control in ("data-edit", "add-form", "save-form", 'class="handle"', "Submit v1"):
        assert control not in html
    k = keys(rubric)
    writes = [
        (draft_url(rubric, "add"), {"text": "x", "points": "1"}),
        (draft_url(rubric, "delete"), {"key": k[0]}),
        (draft_url(rubric, "discard"), {}),
        (url("rubric_save", rubric), {}),
        (url("rubric_resolve", rubric), {}),
        (url("rubric_comment", rubric), {"key": k[0], "text": "x"}),
        (reverse("annotation:prompt_rubric_start", args=[project.slug, prompt.pk]), {}),
        (reverse("annotation:project_rubric_create", args=[project.slug]), {"title": "t"}),
    ]
    for target, data in writes:
        assert client.post(target, data, **HX).status_code == 403, target
    assert client.post(url("rubric_workflow", rubric), {"action": "submit"}).status_code == 403
    assert not RubricDraft.objects.exists() and CriterionComment.objects.count() == 0
    assert RubricVersion.objects.count() == 1 and Rubric.objects.count() == 1


def test_outsider_gets_404_everywhere(project, prompt, rubric, owner, outsider):
    client = login(outsider)
    comment = rubric_comments.comment_add(rubric=rubric, author=owner, text="hm")
    gets = [
        url("rubric_page", rubric),
        url("rubric_editor", rubric),
        url("rubric_export", rubric),
        reverse("annotation:prompt_detail", args=[project.slug, prompt.pk]),
    ]
    posts = [
        draft_url(rubric, "add"),
        url("rubric_save", rubric),
        url("rubric_resolve", rubric),
        url("rubric_workflow", rubric),
        url("rubric_comment", rubric),
        url("rubric_comment_resolve", rubric, comment.pk),
        reverse("annotation:prompt_rubric_start", args=[project.slug, prompt.pk]),
        reverse("annotation:project_rubric_create", args=[project.slug]),
    ]
    for target in gets:
        assert client.get(target).status_code == 404, target
    for target in posts:
        assert (
            client.post(target, {"text": "x", "points": "1", "action": "submit"}).status_code == 404
        ), target


def test_rubric_of_another_project_is_404(project, rubric, editor):
    other = project_services.project_create(name="Other", slug="other", owner=editor)
    target = reverse("annotation:rubric_draft", args=[other.slug, rubric.pk, "add"])
    assert login(editor).post(target, {"text": "x", "points": "1"}).status_code == 404


def test_archived_rubric_is_read_only(project, prompt, rubric, editor):
    rubric_workflow.rubric_archive(rubric=rubric, actor=editor)
    client = login(editor)
    html = page(client, prompt)
    assert "Archived: read-only." in html and "data-edit" not in html
    r = client.post(draft_url(rubric, "add"), {"text": "x", "points": "1"}, **HX)
    assert "archived" in r.content.decode()
    assert not RubricDraft.objects.exists()


def test_htmx_edits_need_the_csrf_token(project, prompt, rubric, editor):
    client = Client(enforce_csrf_checks=True)
    client.force_login(editor)
    html = page(client, prompt)
    token = html.split('"X-CSRFToken": "')[1].split('"')[0]
    target = draft_url(rubric, "add")
    assert client.post(target, {"text": "x", "points": "1"}, **HX).status_code == 403
    ok = client.post(target, {"text": "x", "points": "1"}, HTTP_X_CSRFTOKEN=token, **HX)
    assert ok.status_code == 200


def test_non_htmx_posts_land_back_on_the_page(project, prompt, rubric, editor):
    client = login(editor)
    r = client.post(draft_url(rubric, "add"), {"text": "Plain form", "points": "1"})
    assert r.status_code == 302 and r.url.endswith(f"/prompts/{prompt.pk}/")
    r = client.post(url("rubric_save", rubric), {}, follow=True)
    assert "Saved as version 2." in r.content.decode()


def big_rubric(project, editor, n_criteria: int, n_versions: int) -> Rubric:  # type: ignore[no-untyped-def]
    prompt = PromptFactory(project=project)
    rubric = rubric_services.rubric_create(
        project=project,
        prompt=prompt,
        title="big",
        author=editor,
        criteria=[
            CriterionInput(text=f"Criterion number {i} about topic {i * 7919}", points=i % 7 - 2)
            for i in range(n_criteria)
        ],
    )
    base = [
        CriterionInput(text=c.text, points=c.points, key=c.key)
        for c in rubric.current_version.criteria.order_by("position")
    ]
    for v in range(2, n_versions + 1):
        base[v % n_criteria].points += 1
        rubric_services.rubric_version_create(
            rubric=rubric, criteria=base, author=editor, note=f"v{v}"
        )
    return rubric


@pytest.mark.parametrize("size", [(3, 2), (60, 30)])
def test_editor_queries_are_bounded_whatever_the_rubric_size(
    project, editor, reviewer, size, django_assert_max_num_queries
):
    rubric = big_rubric(project, editor, *size)
    k = keys(rubric)
    for key in k[:5]:
        rubric_comments.comment_add(rubric=rubric, author=reviewer, text="check", criterion_key=key)
    rubric_workflow.rubric_submit_for_review(rubric=rubric, actor=editor)
    rubric_workflow.rubric_review(
        rubric=rubric, actor=reviewer, decision="request_changes", comment="Split the long ones"
    )
    client = login(editor)
    client.post(draft_url(rubric, "move"), {"key": k[0], "direction": "down"}, **HX)
    prompt_url = reverse("annotation:prompt_detail", args=[project.slug, rubric.prompt_id])
    # The same counts for 3 criteria in 2 versions as for 60 criteria in 30 versions.
    with django_assert_max_num_queries(14):
        html = client.get(prompt_url).content.decode()
    assert html.count("data-edit") == size[0] and "Split the long ones" in html
    assert html.count("check</div>") == min(5, size[0])
    with django_assert_max_num_queries(9):
        client.get(url("rubric_editor", rubric))
    with django_assert_max_num_queries(14):
        client.post(draft_url(rubric, "move"), {"key": k[1], "direction": "down"}, **HX)


def test_near_duplicates_and_compound_criteria_are_warned_inline(project, prompt, rubric, editor):
    client = login(editor)
    r = client.post(
        draft_url(rubric, "paste"),
        {"text": "Advises calling emergency service\nStates the dose and warns about side effects"},
        **HX,
    ).content.decode()
    assert "Nearly the same as another criterion" in r
    assert "Joins several requirements" in r
    assert 'id="save-version" disabled' not in r  # warnings do not block saving


def test_a_pitfall_with_positive_points_is_warned_inline(project, prompt, rubric, editor):
    client = login(editor)
    data = {"text": "Recommends an unproven remedy", "points": "4", "category": "pitfall"}
    r = client.post(draft_url(rubric, "add"), data, **HX).content.decode()
    assert "rewards the mistake it describes" in r
    assert 'id="save-version" disabled' not in r


def test_superuser_edits_any_project(project, prompt, rubric):
    admin = UserFactory(username="root", is_superuser=True, is_staff=True)
    r = login(admin).post(draft_url(rubric, "add"), {"text": "Admin", "points": "1"}, **HX)
    assert r.status_code == 200 and RubricDraft.objects.filter(user=admin).exists()


def test_reviewer_comments_but_cannot_edit(project, prompt, rubric, reviewer):
    client = login(reviewer)
    html = page(client, prompt)
    assert "comment-form" in html and "data-edit" not in html
    assert client.post(draft_url(rubric, "add"), {"text": "x", "points": "1"}).status_code == 403


def test_an_edit_from_a_page_that_went_stale_is_merged_not_applied_over(
    project, prompt, rubric, editor, owner
):
    """The page showed v1; someone saved v2 before the first edit reached the server."""
    k = keys(rubric)
    theirs = login(owner)
    theirs.post(draft_url(rubric, "update"), {"key": k[1], "points": "6"}, **HX)
    theirs.post(url("rubric_save", rubric), {}, **HX)  # v2 changes criterion 2
    mine = login(editor)
    mine.post(draft_url(rubric, "update"), {"key": k[0], "points": "9", "base": "1"}, **HX)
    assert RubricDraft.objects.get(user=editor).base_number == 1
    mine.post(url("rubric_save", rubric), {}, **HX)
    v3 = {str(c.key): c.points for c in RubricVersion.objects.get(number=3).criteria.all()}
    assert (v3[k[0]], v3[k[1]]) == (9.0, 6.0)  # their change survives

    # The same criterion changed on a stale page: a conflict, not a silent overwrite.
    theirs.post(draft_url(rubric, "update"), {"key": k[2], "points": "-7"}, **HX)
    theirs.post(url("rubric_save", rubric), {}, **HX)  # v4
    mine.post(draft_url(rubric, "update"), {"key": k[2], "points": "-1", "base": "3"}, **HX)
    r = mine.post(url("rubric_save", rubric), {}, **HX).content.decode()
    assert 'id="conflicts"' in r
    assert RubricVersion.objects.filter(rubric=rubric).count() == 4


def test_a_clean_merge_that_fails_a_check_is_left_in_the_draft_to_fix(
    project, prompt, rubric, editor, owner
):
    mine, theirs = login(editor), login(owner)
    mine.post(draft_url(rubric, "add"), {"text": "Mentions aspirin", "points": "2"}, **HX)
    mine_key = RubricDraft.objects.get(user=editor).criteria[-1]["key"]
    theirs.post(draft_url(rubric, "add"), {"text": "Mentions aspirin", "points": "2"}, **HX)
    theirs.post(url("rubric_save", rubric), {}, **HX)  # v2
    r = mine.post(url("rubric_save", rubric), {}, **HX).content.decode()
    assert "together they fail a check" in r and "Same text as another criterion" in r
    draft = RubricDraft.objects.get(user=editor)
    assert draft.base_number == 2 and len(draft.criteria) == 5
    assert [c["text"] for c in draft.criteria].count("Mentions aspirin") == 2
    mine.post(draft_url(rubric, "delete"), {"key": mine_key}, **HX)
    # Without my copy the draft is exactly their version: nothing is left to save.
    assert not RubricDraft.objects.filter(user=editor).exists()
    assert "Mentions aspirin" in page(mine, prompt)


def test_no_edits_while_conflicts_wait_and_theirs_goes_back_to_its_place(
    project, prompt, rubric, editor, owner
):
    k = keys(rubric)
    mine, theirs = login(editor), login(owner)
    mine.post(draft_url(rubric, "delete"), {"key": k[0]}, **HX)
    theirs.post(draft_url(rubric, "update"), {"key": k[0], "points": "12"}, **HX)
    theirs.post(url("rubric_save", rubric), {}, **HX)
    mine.post(url("rubric_save", rubric), {}, **HX)
    r = mine.post(draft_url(rubric, "add"), {"text": "x", "points": "1"}, **HX).content.decode()
    assert "Settle the conflicting criteria first" in r
    mine.post(url("rubric_resolve", rubric), {f"choice-{k[0]}": "theirs"}, **HX)
    draft = RubricDraft.objects.filter(user=editor).first()
    assert draft is None  # taking theirs for the only change leaves nothing unsaved
    assert "Advises calling emergency services" in page(mine, prompt)
    assert keys(rubric)[0] == k[0]


def test_a_failed_first_edit_does_not_leave_an_empty_rubric(project, editor):
    prompt = PromptFactory(project=project)
    start = reverse("annotation:prompt_rubric_start", args=[project.slug, prompt.pk])
    r = login(editor).post(start, {"op": "paste", "text": "[x] bad"}, **HX)
    assert "Line 1: the points must be a number" in r.content.decode()
    assert not Rubric.objects.filter(prompt=prompt).exists()


@pytest.mark.parametrize(
    "target, data",
    [
        ("add", {"text": "nul\x00", "points": "1"}),
        ("add", {"text": "ok", "points": "1", "tags": "a\x00"}),
        ("paste", {"text": "nul\x00"}),
        ("import", {"json": '{"rubrics": [{"criterion": "a\\u0000", "points": 1}]}'}),
        ("save", {"note": "nul\x00"}),
        ("comment", {"text": "nul\x00"}),
        ("request_changes", {"comment": "nul\x00"}),
    ],
)
def test_nul_characters_get_a_clear_error_and_change_nothing(
    project, prompt, rubric, owner, target, data
):
    client = login(owner)
    client.post(draft_url(rubric, "add"), {"text": "Mentions aspirin", "points": "2"}, **HX)
    before = RubricDraft.objects.get().criteria
    if target == "save":
        response = client.post(url("rubric_save", rubric), data, **HX)
    elif target == "comment":
        data = {**data, "key": keys(rubric)[0]}
        response = client.post(url("rubric_comment", rubric), data, **HX)
    elif target == "request_changes":
        rubric_workflow.rubric_submit_for_review(rubric=rubric, actor=owner)
        data = {**data, "action": "request_changes"}
        response = client.post(url("rubric_workflow", rubric), data, **HX)
    else:
        response = client.post(draft_url(rubric, target), data, **HX)
    assert response.status_code == 200 and "NUL character" in response.content.decode()
    assert RubricDraft.objects.get().criteria == before
    assert RubricVersion.objects.count() == 1 and CriterionComment.objects.count() == 0


def test_a_draft_holds_at_most_300_criteria(project, prompt, rubric, editor):
    client = login(editor)
    lines = "\n".join(f"Criterion number {i}" for i in range(298))
    r = client.post(draft_url(rubric, "paste"), {"text": lines}, **HX).content.decode()
    assert "at most 300 criteria; this edit would make 301" in r
    assert not RubricDraft.objects.exists()
