"""Review workflow: draft → in review → approved (→ archived), roles, self-approval,
and editing an approved rubric starting a new draft while the approved version stays."""

from __future__ import annotations

import pytest

from annotation.errors import ApplicationError
from annotation.projects import services as project_services
from annotation.projects.models import AuditEvent
from annotation.rubrics import services as rubric_services
from annotation.rubrics.models import RubricReviewDecision
from annotation.rubrics.services import CriterionInput
from tests.factories import PromptFactory


@pytest.fixture
def rubric(project, editor):  # type: ignore[no-untyped-def]
    return rubric_services.rubric_create(
        project=project,
        prompt=PromptFactory(project=project),
        title="r",
        author=editor,
        criteria=[CriterionInput(text="Mentions the dose", points=5)],
    )


def flow(api, project, rubric, user, action, comment=""):  # type: ignore[no-untyped-def]
    api.force_authenticate(user)
    return api.post(
        f"/api/projects/{project.slug}/rubrics/{rubric.pk}/workflow/",
        {"action": action, "comment": comment},
        format="json",
    )


def test_full_cycle_and_approved_version_survives_new_edits(api, project, rubric, editor, reviewer):
    assert flow(api, project, rubric, editor, "submit").json()["status"] == "in_review"
    sent_back = flow(api, project, rubric, reviewer, "request_changes", "Add a pitfall item")
    assert sent_back.json()["status"] == "draft"
    flow(api, project, rubric, editor, "submit")
    approved = flow(api, project, rubric, reviewer, "approve").json()
    assert approved["status"] == "approved" and approved["approved_version"] == 1
    assert list(RubricReviewDecision.objects.values_list("decision", flat=True)) == [
        "approve",
        "request_changes",
    ]

    rubric_services.rubric_version_create(
        rubric=rubric, author=editor, criteria=[CriterionInput(text="Mentions the dose", points=6)]
    )
    rubric.refresh_from_db()
    assert rubric.status == "draft"
    assert rubric.current_version.number == 2 and rubric.approved_version.number == 1
    assert rubric.approved_version.criteria.get().points == 5  # frozen
    actions = set(AuditEvent.objects.filter(project=project).values_list("action", flat=True))
    assert {
        "rubric.submit",
        "rubric.approve",
        "rubric.request_changes",
        "rubric.version",
    } <= actions


def test_roles_for_each_action(api, project, rubric, editor, reviewer, viewer, outsider):
    assert flow(api, project, rubric, viewer, "submit").status_code == 403
    assert flow(api, project, rubric, reviewer, "submit").status_code == 403
    assert flow(api, project, rubric, outsider, "submit").status_code == 404
    flow(api, project, rubric, editor, "submit")
    assert flow(api, project, rubric, viewer, "approve").status_code == 403
    rubric.refresh_from_db()
    assert rubric.status == "in_review"


def test_self_approval_follows_the_project_setting(api, project, rubric, editor, owner):
    flow(api, project, rubric, editor, "submit")
    # The editor wrote version 1; as owner-level reviewer they still may not approve it.
    project_services.membership_set_role(
        membership=editor.memberships.get(project=project), actor=owner, role="owner"
    )
    refused = flow(api, project, rubric, editor, "approve")
    assert refused.status_code == 400 and "another reviewer" in refused.json()["detail"]
    project.allow_self_approval = True
    project.save()
    assert flow(api, project, rubric, editor, "approve").json()["status"] == "approved"


def test_invalid_transitions_are_clear_errors(api, project, rubric, editor, reviewer):
    response = flow(api, project, rubric, reviewer, "approve")
    assert response.status_code == 400 and "draft" in response.json()["detail"]
    flow(api, project, rubric, editor, "submit")
    no_comment = flow(api, project, rubric, reviewer, "request_changes")
    assert no_comment.status_code == 400 and "comment" in no_comment.json()["detail"]
    assert flow(api, project, rubric, editor, "archive").json()["status"] == "archived"
    with pytest.raises(ApplicationError, match="archived"):
        rubric_services.rubric_version_create(
            rubric=rubric, author=editor, criteria=[CriterionInput(text="x y z", points=1)]
        )
    rubric.refresh_from_db()
    assert rubric.versions.count() == 1


def test_the_editor_offers_approve_only_to_who_may_approve(  # type: ignore[no-untyped-def]
    client, api, project, rubric, editor, reviewer, owner
):
    from django.urls import reverse

    flow(api, project, rubric, editor, "submit")
    page = reverse("annotation:rubric_editor", args=[project.slug, rubric.pk])
    client.force_login(reviewer)
    assert "Approve v1" in client.get(page).content.decode()
    project_services.membership_set_role(
        membership=editor.memberships.get(project=project), actor=owner, role="owner"
    )
    client.force_login(editor)  # wrote version 1: another reviewer approves it
    html = client.get(page).content.decode()
    assert "Approve v1" not in html and "needs another reviewer" in html
    project.allow_self_approval = True
    project.save()
    assert "Approve v1" in client.get(page).content.decode()
