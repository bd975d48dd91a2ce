"""API parity for the editor: read a version with its criteria, comment on criteria and
resolve, export a rubric as JSON; scoped by membership and role."""

from __future__ import annotations

import pytest

from annotation.projects import services as project_services
from annotation.projects.models import AuditEvent
from annotation.rubrics import services as rubric_services
from annotation.rubrics.models import CriterionComment
from annotation.rubrics.services import CriterionInput
from tests.factories import PromptFactory


@pytest.fixture
def rubric(project, editor):  # type: ignore[no-untyped-def]
    prompt = PromptFactory(
        project=project,
        external_id="q-1",
        messages=[{"role": "user", "content": "How much paracetamol is safe?"}],
    )
    return rubric_services.rubric_create(
        project=project,
        prompt=prompt,
        title="Dosing",
        author=editor,
        criteria=[
            CriterionInput(text="States the daily maximum", points=5, category="essential"),
            CriterionInput(text="Recommends exceeding the maximum", points=-8),
        ],
    )


def base(project, rubric) -> str:  # type: ignore[no-untyped-def]
    return f"/api/projects/{project.slug}/rubrics/{rubric.pk}"


def test_version_detail_has_its_criteria(api, project, rubric, viewer, outsider):
    api.force_authenticate(viewer)
    body = api.get(f"{base(project, rubric)}/versions/1/").json()
    assert body["number"] == 1 and body["author"] == "editor"
    assert [c["text"] for c in body["criteria"]] == [
        "States the daily maximum",
        "Recommends exceeding the maximum",
    ]
    assert api.get(f"{base(project, rubric)}/versions/9/").status_code == 404
    api.force_authenticate(outsider)
    assert api.get(f"{base(project, rubric)}/versions/1/").status_code == 404


def test_comments_are_written_by_reviewers_and_read_by_viewers(
    api, project, rubric, reviewer, viewer, outsider
):
    key = str(rubric.current_version.criteria.get(position=0).key)
    api.force_authenticate(reviewer)
    created = api.post(
        f"{base(project, rubric)}/comments/",
        {"criterion_key": key, "text": "Say 4 g for adults"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    assert created.json()["author"] == "reviewer" and created.json()["version_number"] == 1
    cid = created.json()["id"]
    bad = api.post(
        f"{base(project, rubric)}/comments/",
        {"criterion_key": "00000000-0000-0000-0000-000000000000", "text": "?"},
        format="json",
    )
    assert bad.status_code == 400 and "no criterion with that key" in bad.json()["detail"]
    resolved = api.post(f"{base(project, rubric)}/comments/{cid}/resolve/", {}, format="json")
    assert resolved.json()["resolved_by"] == "reviewer"

    api.force_authenticate(viewer)
    listed = api.get(f"{base(project, rubric)}/comments/?criterion={key}").json()
    assert [c["text"] for c in listed["results"]] == ["Say 4 g for adults"]
    assert api.get(f"{base(project, rubric)}/comments/?open=1").json()["count"] == 0
    assert (
        api.post(f"{base(project, rubric)}/comments/", {"text": "x"}, format="json").status_code
        == 403
    )
    assert (
        api.post(f"{base(project, rubric)}/comments/{cid}/resolve/", {}, format="json").status_code
        == 403
    )
    api.force_authenticate(outsider)
    assert api.get(f"{base(project, rubric)}/comments/").status_code == 404
    assert CriterionComment.objects.count() == 1
    assert AuditEvent.objects.filter(action="rubric.comment").count() == 1


def test_export_in_both_shapes(api, project, rubric, viewer, editor, outsider):
    api.force_authenticate(viewer)
    hb = api.get(f"{base(project, rubric)}/export/").json()
    assert hb["prompt_id"] == "q-1" and hb["rubrics"][1]["points"] == -8
    rar = api.get(f"{base(project, rubric)}/export/?shape=rar").json()
    assert rar["rubric"][0]["description"] == "Essential Criteria: States the daily maximum"
    assert api.get(f"{base(project, rubric)}/export/?shape=xml").status_code == 400
    # An older version by number, after an edit.
    keys = [c.key for c in rubric.current_version.criteria.order_by("position")]
    rubric_services.rubric_version_create(
        rubric=rubric,
        author=editor,
        criteria=[CriterionInput(text="States 4 g a day for adults", points=5, key=keys[0])],
    )
    assert len(api.get(f"{base(project, rubric)}/export/").json()["rubrics"]) == 1
    assert len(api.get(f"{base(project, rubric)}/export/?version=1").json()["rubrics"]) == 2
    api.force_authenticate(outsider)
    assert api.get(f"{base(project, rubric)}/export/").status_code == 404


def test_rubric_detail_lists_its_versions(api, project, rubric, viewer, editor):
    keys = [c.key for c in rubric.current_version.criteria.order_by("position")]
    rubric_services.rubric_version_create(
        rubric=rubric,
        author=editor,
        note="tighter",
        criteria=[CriterionInput(text="States 4 g a day", points=5, key=keys[0])],
    )
    api.force_authenticate(viewer)
    body = api.get(base(project, rubric) + "/").json()
    assert body["version"] == 2 and [c["text"] for c in body["criteria"]] == ["States 4 g a day"]
    assert [(v["number"], v["parent"], v["criteria_count"]) for v in body["versions"]] == [
        (2, 1, 1),
        (1, None, 2),
    ]
    assert body["versions"][0]["note"] == "tighter"


def test_create_rubrics_through_the_api(api, project, editor, viewer):
    prompt = PromptFactory(project=project, external_id="p-9")
    url = f"/api/projects/{project.slug}/rubrics/"
    api.force_authenticate(viewer)
    assert api.post(url, {"prompt": prompt.pk}, format="json").status_code == 403
    api.force_authenticate(editor)
    made = api.post(
        url,
        {"prompt": prompt.pk, "criteria": [{"text": "Is correct", "points": 3}]},
        format="json",
    )
    assert made.status_code == 201, made.json()
    assert made.json()["title"] == "Rubric for p-9" and made.json()["version"] == 1
    again = api.post(url, {"prompt": prompt.pk}, format="json")
    assert again.status_code == 400 and "already has a rubric" in again.json()["detail"]
    wide = api.post(url, {"title": "Tone"}, format="json").json()
    assert (wide["prompt"], wide["version"], wide["criteria"]) == (None, None, [])
    assert api.post(url, {"title": ""}, format="json").status_code == 400
    dup = api.post(
        url,
        {"title": "Dup", "criteria": [{"text": "A b", "points": 1}, {"text": "a, b", "points": 1}]},
        format="json",
    )
    assert dup.status_code == 400 and "Same text" in dup.json()["detail"]
    other = project_services.project_create(name="Other", slug="other", owner=editor)
    foreign = PromptFactory(project=other)
    assert api.post(url, {"prompt": foreign.pk}, format="json").status_code == 404


def test_bad_query_parameters_get_400_not_500(api, project, rubric, viewer):
    api.force_authenticate(viewer)
    assert api.get(f"{base(project, rubric)}/comments/?criterion=abc").status_code == 400
    assert api.get(f"{base(project, rubric)}/export/?version=²").status_code == 400


def test_api_saves_are_capped_in_size(api, project, rubric, editor):
    api.force_authenticate(editor)
    body = {
        "base_version": 1,
        "criteria": [{"text": f"Criterion {i}", "points": 1} for i in range(301)],
    }
    response = api.post(f"{base(project, rubric)}/versions/", body, format="json")
    assert response.status_code == 400 and "criteria" in response.json()
