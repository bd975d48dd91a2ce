"""Comments on single criteria (followed by the criterion's stable key), resolvable."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from annotation.errors import ApplicationError, check_text
from annotation.projects.services import audit
from annotation.rubrics.models import Criterion, CriterionComment, Rubric, RubricDraft

MAX_COMMENT = 5000


def _known_key(rubric: Rubric, key: uuid.UUID, author: User) -> bool:
    """A key of any saved version of the rubric, or of the author's own draft."""
    if Criterion.objects.filter(version__rubric=rubric, key=key).exists():
        return True
    draft = RubricDraft.objects.filter(rubric=rubric, user=author).first()
    return draft is not None and any(c["key"] == str(key) for c in draft.criteria)


@transaction.atomic
def comment_add(
    *, rubric: Rubric, author: User, text: str, criterion_key: str | uuid.UUID | None = None
) -> CriterionComment:
    text = check_text(text, "The comment").strip()
    if not text:
        raise ApplicationError("The comment is empty.")
    if len(text) > MAX_COMMENT:
        raise ApplicationError(f"The comment is {len(text)} characters; at most {MAX_COMMENT}.")
    key = None
    if criterion_key:
        try:
            key = uuid.UUID(str(criterion_key))
        except ValueError:
            raise ApplicationError(f"'{criterion_key}' is not a criterion key.") from None
        if not _known_key(rubric, key, author):
            raise ApplicationError("This rubric has no criterion with that key.")
    comment = CriterionComment.objects.create(
        rubric=rubric,
        criterion_key=key,
        version_number=rubric.current_version.number if rubric.current_version else None,
        author=author,
        text=text,
    )
    audit(
        project=rubric.project,
        actor=author,
        action="rubric.comment",
        target=str(rubric.pk),
        comment=comment.pk,
        criterion=str(key or ""),
    )
    return comment


@transaction.atomic
def comment_resolve(
    *, comment: CriterionComment, actor: User, resolved: bool = True
) -> CriterionComment:
    """Resolve a comment, or reopen it (``resolved=False``)."""
    comment = CriterionComment.objects.select_for_update().get(pk=comment.pk)
    if resolved == (comment.resolved_at is not None):
        return comment
    comment.resolved_at = timezone.now() if resolved else None
    comment.resolved_by = actor if resolved else None
    comment.save(update_fields=["resolved_at", "resolved_by"])
    audit(
        project=comment.rubric.project,
        actor=actor,
        action="rubric.comment_resolve" if resolved else "rubric.comment_reopen",
        target=str(comment.rubric_id),
        comment=comment.pk,
    )
    return comment
