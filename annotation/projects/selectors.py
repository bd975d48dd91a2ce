"""Reads of projects and members. Every queryset a view or API endpoint touches starts from
``project_get_for_user``, scoped by the user's membership, so no view can forget the
permission check (outsiders get 404)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, F, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils import timezone

from annotation.projects.models import ROLE_RANK, Membership, Project, ProjectCounts, Role
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


def _counted(project: Project | OuterRef) -> dict[str, tuple[QuerySet[Any], str]]:
    """What the studio counts of a project, by name: each queryset with the field that
    names its project. The one definition of it ("criteria" = those of current versions)."""
    return {
        "prompts": (Prompt.objects.filter(project=project), "project"),
        "responses": (
            Response.objects.filter(prompt__project=project).without_probes(),
            "prompt__project",
        ),
        "rubrics": (Rubric.objects.filter(project=project), "project"),
        "criteria": (
            Criterion.objects.filter(
                version__rubric__project=project, version__rubric__current_version=F("version")
            ),
            "version__rubric__project",
        ),
        "preference_labels": (
            PreferenceLabel.objects.filter(prompt__project=project),
            "prompt__project",
        ),
        # the imported pairs a review queue can be made of
        "dataset_pairs": (
            PreferenceLabel.objects.filter(
                prompt__project=project, source=PreferenceLabel.Source.DATASET
            ),
            "prompt__project",
        ),
        "members": (Membership.objects.filter(project=project), "project"),
    }


COUNTED = (
    "prompts",
    "responses",
    "rubrics",
    "criteria",
    "preference_labels",
    "dataset_pairs",
    "members",
)


def _with_counts(projects: QuerySet[Project]) -> QuerySet[Project]:
    """Annotate ``n_<thing>`` counts, one query however many projects there are."""
    counted = _counted(OuterRef("pk"))
    return projects.annotate(**{f"n_{name}": _count(qs, by) for name, (qs, by) in counted.items()})


# A project with this many responses shows the counts a worker stored (at most FRESH old
# when they were asked for, then counted again in the background); a smaller one counts live.
LARGE_PROJECT = 20_000
FRESH = timedelta(seconds=60)
LIVE = ("members",)  # always counted live: a handful of rows, and changed by hand


def _live_counts(project: Project) -> dict[str, int]:
    """Counted in one query (a small project's)."""
    counted = _with_counts(Project.objects.filter(pk=project.pk)).get()
    return {name: getattr(counted, f"n_{name}") for name in COUNTED}


def _large_counts(project: Project) -> dict[str, int]:
    """Counted one query each (a large project's, by the worker): PostgreSQL plans a count
    on its own far better than as a correlated subquery (index-only scans)."""
    counted = _counted(project)
    return {name: counted[name][0].count() for name in COUNTED}


def _is_large(counts: dict[str, int]) -> bool:
    return counts.get("responses", 0) >= LARGE_PROJECT


def _usable(stored: ProjectCounts | None) -> bool:
    """Stored counts stand in for live ones: a large project's, with every name counted (a
    name added since they were stored is counted live, once, and stored again)."""
    return stored is not None and _is_large(stored.counts) and set(COUNTED) <= stored.counts.keys()


def _stored_counts(project: Project, stored: ProjectCounts) -> dict[str, int]:
    """The stored counts (the live ones of ``LIVE``); asks a worker to count again, once,
    when they are older than ``FRESH``."""
    if timezone.now() - stored.counted_at > FRESH and cache.add(
        f"project-recount:{project.pk}", 1, int(FRESH.total_seconds())
    ):
        from annotation.projects.tasks import project_recount

        project_id = project.pk
        transaction.on_commit(lambda: project_recount.delay(project_id))
    return {
        **{name: int(stored.counts.get(name, 0)) for name in COUNTED},
        **{name: _counted(project)[name][0].count() for name in LIVE},
    }


def project_counts_store(*, project: Project, counts: dict[str, int]) -> None:
    """Keep a large project's counts (what the worker's recount and a first count do)."""
    ProjectCounts.objects.update_or_create(
        project=project, defaults={"counts": counts, "counted_at": timezone.now()}
    )


def project_counts_refresh(*, project_id: int) -> None:
    """Count a project again and keep the counts if it is large (the worker's task)."""
    project = Project.objects.filter(pk=project_id).first()
    if project is not None:
        counts = _large_counts(project)
        if _is_large(counts):
            project_counts_store(project=project, counts=counts)
        else:
            ProjectCounts.objects.filter(project=project).delete()


def project_counts(*, project: Project) -> dict[str, int]:
    """One project's counts: live for a project of fewer than ``LARGE_PROJECT`` responses;
    for a larger one, those a worker counted (a minute old at most when last asked for)."""
    stored = ProjectCounts.objects.filter(project=project).first()
    if stored is not None and _usable(stored):
        return _stored_counts(project, stored)
    counts = _live_counts(project)
    if _is_large(counts):
        project_counts_store(project=project, counts=counts)
    return counts


def projects_with_counts(*, user: User | AnonymousUser, limit: int = 200) -> list[Project]:
    """The user's projects by name, each with ``n_<thing>`` counts: the stored ones of
    large projects, the others' counted in one query."""
    projects = list(
        projects_for_user(user=user).select_related("stored_counts").order_by("name")[:limit]
    )
    stored = {}
    for project in projects:
        kept = getattr(project, "stored_counts", None)
        if kept is not None and _usable(kept):
            stored[project.pk] = _stored_counts(project, kept)
    small = [p.pk for p in projects if p.pk not in stored]
    counted = _with_counts(Project.objects.filter(pk__in=small)) if small else []
    for project in counted:
        counts = {name: getattr(project, f"n_{name}") for name in COUNTED}
        if _is_large(counts):  # its first count: kept for the next pages
            project_counts_store(project=project, counts=counts)
        stored[project.pk] = counts
    for project in projects:
        for name in COUNTED:
            setattr(project, f"n_{name}", stored[project.pk][name])
    return projects


def memberships_of(*, project: Project) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(project=project).select_related("user").order_by("user__username")
    )
