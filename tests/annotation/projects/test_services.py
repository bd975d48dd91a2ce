from __future__ import annotations

import pytest

from annotation.errors import ApplicationError
from annotation.projects import services as project_services
from annotation.projects.models import AuditEvent, Membership, Role
from annotation.rubrics import services as rubric_services
from annotation.rubrics.models import Rubric
from annotation.rubrics.services import CriterionInput
from tests.factories import PromptFactory, UserFactory


@pytest.mark.django_db
def test_project_create_makes_the_creator_owner_and_audits():
    user = UserFactory()
    project = project_services.project_create(name="Cardiology rubrics", owner=user)
    assert project.slug == "cardiology-rubrics"
    assert Membership.objects.get(project=project, user=user).role == Role.OWNER
    assert AuditEvent.objects.filter(project=project, action="project.create").count() == 1


@pytest.mark.django_db
def test_project_slug_must_be_unique():
    user = UserFactory()
    project_services.project_create(name="A", slug="a", owner=user)
    with pytest.raises(ApplicationError, match="already exists"):
        project_services.project_create(name="A again", slug="a", owner=user)


def test_membership_add_by_exact_username_only(project, owner):
    UserFactory(username="dr-lee", email="lee@hospital.org")
    for other_name in ("lee@hospital.org", "LEE@hospital.org", "DR-LEE", "dr-le"):
        with pytest.raises(ApplicationError, match="No user"):
            project_services.membership_add(
                project=project, actor=owner, username=other_name, role=Role.EDITOR
            )
    assert not Membership.objects.filter(project=project, user__username="dr-lee").exists()
    m = project_services.membership_add(
        project=project, actor=owner, username="dr-lee", role=Role.EDITOR
    )
    assert m.user.username == "dr-lee" and m.role == Role.EDITOR
    with pytest.raises(ApplicationError, match="already a member"):
        project_services.membership_add(
            project=project, actor=owner, username="dr-lee", role="viewer"
        )
    with pytest.raises(ApplicationError, match="No user"):
        project_services.membership_add(
            project=project, actor=owner, username="nobody", role="viewer"
        )
    with pytest.raises(ApplicationError, match="Unknown role"):
        project_services.membership_add(project=project, actor=owner, username="x", role="admin")


def test_last_owner_cannot_be_demoted_or_removed(project, owner):
    membership = Membership.objects.get(project=project, user=owner)
    with pytest.raises(ApplicationError, match="at least one owner"):
        project_services.membership_set_role(membership=membership, actor=owner, role=Role.VIEWER)
    with pytest.raises(ApplicationError, match="at least one owner"):
        project_services.membership_remove(membership=membership, actor=owner)
    assert Membership.objects.get(pk=membership.pk).role == Role.OWNER


def test_rubric_versions_are_appended_with_stable_keys(project, editor):
    prompt = PromptFactory(project=project)
    rubric = rubric_services.rubric_create(
        project=project,
        prompt=prompt,
        title="r",
        author=editor,
        criteria=[CriterionInput(text="Mentions dosage", points=5, tags=["axis:accuracy"])],
    )
    first = rubric.current_version
    key = first.criteria.get().key
    v2 = rubric_services.rubric_version_create(
        rubric=rubric,
        author=editor,
        criteria=[
            CriterionInput(text="Mentions the dosage", points=5, key=key),
            CriterionInput(text="Recommends self-harm", points=-10, category="pitfall"),
        ],
    )
    rubric.refresh_from_db()
    assert (first.number, v2.number) == (1, 2)
    assert v2.parent_id == first.pk
    assert rubric.current_version_id == v2.pk
    assert v2.criteria.get(position=0).key == key
    assert list(first.criteria.values_list("text", flat=True)) == ["Mentions dosage"]
    assert rubric.status == Rubric.Status.DRAFT


def test_rubric_version_rejects_empty_text(project):
    rubric = rubric_services.rubric_create(
        project=project, title="r", criteria=[CriterionInput(text="ok", points=1)]
    )
    with pytest.raises(ApplicationError, match="Criterion 2 has no text"):
        rubric_services.rubric_version_create(
            rubric=rubric,
            criteria=[CriterionInput(text="ok", points=1), CriterionInput(text="  ", points=1)],
        )
    assert rubric.versions.count() == 1


def test_api_token_rotation_invalidates_the_old_token(owner):
    old = project_services.api_token_get_or_create(user=owner).key
    assert project_services.api_token_get_or_create(user=owner).key == old
    new = project_services.api_token_rotate(user=owner).key
    assert new != old
    from rest_framework.test import APIClient

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {old}")
    assert api.get("/api/projects/").status_code == 401
    api.credentials(HTTP_AUTHORIZATION=f"Token {new}")
    assert api.get("/api/projects/").status_code == 200


def test_create_api_token_command_prints_the_token(viewer, capsys):
    from django.core.management import call_command
    from django.core.management.base import CommandError
    from rest_framework.authtoken.models import Token

    call_command("create_api_token", "viewer")
    printed = capsys.readouterr().out.strip()
    assert printed == Token.objects.get(user=viewer).key
    call_command("create_api_token", "viewer", "--rotate")
    assert capsys.readouterr().out.strip() != printed
    with pytest.raises(CommandError, match="No user"):
        call_command("create_api_token", "ghost")
