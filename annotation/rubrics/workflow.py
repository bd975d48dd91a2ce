"""The rubric review workflow: draft → in review → approved (→ archived).

An approved version is frozen: it stays ``approved_version`` (the one exports use) even
when someone edits the rubric, which starts a new draft on top of it.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import transaction

from annotation.errors import ApplicationError, check_text
from annotation.projects.models import Project, Role
from annotation.projects.selectors import project_role_for_user, role_at_least
from annotation.projects.services import audit
from annotation.rubrics.models import Rubric, RubricReviewDecision

Status = Rubric.Status


def _locked(rubric: Rubric) -> Rubric:
    """The rubric row, locked (only it: the joined version and project are read along)."""
    return (
        Rubric.objects.select_for_update(of=("self",))
        .select_related("current_version", "project")
        .get(pk=rubric.pk)
    )


def _require(actor: User, rubric: Rubric, role: Role) -> None:
    if not role_at_least(project_role_for_user(user=actor, project=rubric.project), role):
        raise PermissionDenied(f"This needs the {role.label.lower()} role or higher.")


def _expect(rubric: Rubric, *allowed: str, action: str) -> None:
    if rubric.status not in allowed:
        raise ApplicationError(
            f"Cannot {action} a rubric that is {rubric.get_status_display().lower()}."
        )


@transaction.atomic
def rubric_submit_for_review(*, rubric: Rubric, actor: User) -> Rubric:
    rubric = _locked(rubric)
    _require(actor, rubric, Role.EDITOR)
    _expect(rubric, Status.DRAFT, action="submit")
    if rubric.current_version is None or not rubric.current_version.criteria.exists():
        raise ApplicationError("An empty rubric cannot be submitted for review.")
    rubric.status = Status.IN_REVIEW
    rubric.save(update_fields=["status", "updated_at"])
    audit(
        project=rubric.project,
        actor=actor,
        action="rubric.submit",
        target=str(rubric.pk),
        version=rubric.current_version.number,
    )
    return rubric


def self_approval_refusal(rubric: Rubric, actor: User, project: Project) -> str:
    """Why ``actor`` may not approve the rubric's current version as its author ("" if
    they may: someone else wrote it, or ``project``, the rubric's, allows self-approval)."""
    version = rubric.current_version
    wrote_it = version is not None and version.author_id == actor.pk
    if wrote_it and not project.allow_self_approval:
        return "You wrote this version; this project needs another reviewer to approve it."
    return ""


@transaction.atomic
def rubric_review(*, rubric: Rubric, actor: User, decision: str, comment: str = "") -> Rubric:
    """Approve the current version, or send the rubric back to draft with a comment."""
    rubric = _locked(rubric)
    _require(actor, rubric, Role.REVIEWER)
    _expect(rubric, Status.IN_REVIEW, action="review")
    version = rubric.current_version
    if version is None:
        raise ApplicationError("This rubric has no version to review.")
    if decision == RubricReviewDecision.Decision.APPROVE:
        refusal = self_approval_refusal(rubric, actor, rubric.project)
        if refusal:
            raise ApplicationError(refusal)
        rubric.status = Status.APPROVED
        rubric.approved_version = version
    elif decision == RubricReviewDecision.Decision.REQUEST_CHANGES:
        if not check_text(comment, "The comment").strip():
            raise ApplicationError("Say what should change: a comment is required.")
        rubric.status = Status.DRAFT
    else:
        raise ApplicationError(f"Unknown decision '{decision}'.")
    rubric.save(update_fields=["status", "approved_version", "updated_at"])
    RubricReviewDecision.objects.create(
        rubric=rubric, version=version, reviewer=actor, decision=decision, comment=comment
    )
    audit(
        project=rubric.project,
        actor=actor,
        action=f"rubric.{decision}",
        target=str(rubric.pk),
        version=version.number,
        comment=comment[:500],
    )
    return rubric


@transaction.atomic
def rubric_archive(*, rubric: Rubric, actor: User) -> Rubric:
    rubric = _locked(rubric)
    _require(actor, rubric, Role.EDITOR)
    _expect(rubric, Status.DRAFT, Status.IN_REVIEW, Status.APPROVED, action="archive")
    rubric.status = Status.ARCHIVED
    rubric.save(update_fields=["status", "updated_at"])
    audit(project=rubric.project, actor=actor, action="rubric.archive", target=str(rubric.pk))
    return rubric


def status_after_edit(status: str) -> str:
    """Editing an approved or in-review rubric starts a new draft; an archived rubric
    cannot be edited."""
    if status == Status.ARCHIVED:
        raise ApplicationError("This rubric is archived; it cannot be edited.")
    return Status.DRAFT
