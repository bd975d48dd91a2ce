"""Reads of projects and members. Every queryset a view or API endpoint touches starts from
``project_get_for_user``, scoped by the user's membership, so no view can forget the
permission check (outsiders get 404)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.db.models import Count, F, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404

from annotation.projects.models import ROLE_RANK, Membership, Project, Role
from annotation.prompts.models import PreferenceLabel, Prompt, Response
from annotation.rubrics.models import (
    Criterion,
    Rubric,
)


def projects_for_user(*, user: User | AnonymousUser) -> QuerySet[Project]:
    if not user.is_authenticated:
        return Project.objects.none()
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user)


def can_create_projects(*, user: User | AnonymousUser) -> bool:
    """ALLOW_PROJECT_CREATION: ``staff`` (the default: staff users and superusers) or
    ``all`` (every active user). A project's creator becomes its owner, and owners choose
    what the project's judge endpoints call and spend, so this is the site admin's choice."""
    if not (user.is_authenticated and user.is_active):
        return False
    return settings.ALLOW_PROJECT_CREATION == "all" or user.is_staff or user.is_superuser


def project_role_for_user(*, user: User | AnonymousUser, project: Project) -> Role | None:
    """The user's effective role; superusers act as owners everywhere."""
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return Role.OWNER
    role = (
        Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()
    )
    return Role(role) if role else None


def role_at_least(role: Role | str | None, min_role: Role | str) -> bool:
    return role is not None and ROLE_RANK[Role(role)] >= ROLE_RANK[Role(min_role)]


@dataclass(frozen=True)
class ProjectAccess:
    """A project as one user may use it: the project and that user's role in it."""

    project: Project
    role: Role

    def at_least(self, role: Role) -> bool:
        return role_at_least(self.role, role)

    def require(self, role: Role) -> ProjectAccess:
        """This access, if its role is ``role`` or higher; 403 otherwise."""
        if not self.at_least(role):
            raise PermissionDenied(_needs(role))
        return self

    @property
    def can_review(self) -> bool:
        return self.at_least(Role.REVIEWER)

    @property
    def can_edit(self) -> bool:
        return self.at_least(Role.EDITOR)

    @property
    def is_owner(self) -> bool:
        return self.role == Role.OWNER


def project_get_for_user(
    *, user: User | AnonymousUser, slug: str, min_role: Role = Role.VIEWER
) -> ProjectAccess:
    """Fetch a project and the user's role in it.

    Outsiders get 404 (the project's existence is not revealed); members below
    ``min_role`` get 403.
    """
    project = Project.objects.filter(slug=slug).first()
    role = project_role_for_user(user=user, project=project) if project else None
    if project is None or role is None:
        raise Http404("No such project.")
    if not role_at_least(role, min_role):
        raise PermissionDenied(_needs(min_role))
    return ProjectAccess(project, Role(role))


def _needs(role: Role) -> str:
    return f"This needs the {Role(role).label.lower()} role or higher."


def _count(qs: QuerySet[Any], by: str) -> Coalesce:
    """A correlated COUNT subquery: ``qs`` filtered on OuterRef, grouped by ``by``."""
    grouped = qs.order_by().values(by).annotate(n=Count("pk")).values("n")[:1]
    return Coalesce(Subquery(grouped, output_field=IntegerField()), 0)


def _with_counts(projects: QuerySet[Project]) -> QuerySet[Project]:
    """Annotate ``n_<thing>`` counts, one query however many projects there are. The one
    definition of what the studio counts ("criteria" = those of current versions)."""
    project = OuterRef("pk")
    return projects.annotate(
        n_prompts=_count(Prompt.objects.filter(project=project), "project"),
        n_responses=_count(
            Response.objects.filter(prompt__project=project).without_probes(), "prompt__project"
        ),
        n_rubrics=_count(Rubric.objects.filter(project=project), "project"),
        n_criteria=_count(
            Criterion.objects.filter(
                version__rubric__project=project, version__rubric__current_version=F("version")
            ),
            "version__rubric__project",
        ),
        n_preference_labels=_count(
            PreferenceLabel.objects.filter(prompt__project=project), "prompt__project"
        ),
        n_members=_count(Membership.objects.filter(project=project), "project"),
    )


COUNTED = ("prompts", "responses", "rubrics", "criteria", "preference_labels", "members")


def projects_with_counts(*, user: User | AnonymousUser) -> QuerySet[Project]:
    return _with_counts(projects_for_user(user=user))


def project_counts(*, project: Project) -> dict[str, int]:
    counted = _with_counts(Project.objects.filter(pk=project.pk)).get()
    return {name: getattr(counted, f"n_{name}") for name in COUNTED}


def memberships_of(*, project: Project) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(project=project).select_related("user").order_by("user__username")
    )
