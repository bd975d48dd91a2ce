from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction

from annotation.errors import ApplicationError, StaleVersionError
from annotation.projects.models import Project
from annotation.projects.services import audit
from annotation.prompts.models import Prompt
from annotation.rubrics.logic import CriterionSnapshot, check_criteria
from annotation.rubrics.models import Criterion, Rubric, RubricVersion
from annotation.rubrics.workflow import status_after_edit


@dataclass
class CriterionInput:
    text: str
    points: float
    category: str = ""
    kind: str = Criterion.Kind.PRINCIPLE
    tags: list[str] = field(default_factory=list)
    provenance: str = Criterion.Provenance.HUMAN
    provenance_model: str = ""
    key: uuid.UUID | None = None


_CATEGORIES = frozenset(Criterion.Category.values)
_KINDS = frozenset(Criterion.Kind.values)


class CriterionFields(Protocol):
    @property
    def text(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def kind(self) -> str: ...


def validate_criteria(criteria: Sequence[CriterionFields]) -> None:
    """Refuse a criterion with no text, or an unknown category or kind (ApplicationError)."""
    for i, c in enumerate(criteria, start=1):
        if not c.text.strip():
            raise ApplicationError(f"Criterion {i} has no text.")
        if c.category not in _CATEGORIES:
            raise ApplicationError(f"Criterion {i} has an unknown category '{c.category}'.")
        if c.kind not in _KINDS:
            raise ApplicationError(f"Criterion {i} has an unknown kind '{c.kind}'.")


def _carry_provenance(criteria: list[CriterionInput], parent: RubricVersion | None) -> None:
    """Criteria that keep a key keep their provenance; a model-written criterion that a
    person changed becomes hybrid (a model's own rewrite, marked llm, stays llm)."""
    if parent is None:
        return
    before = {str(c.key): c for c in parent.criteria.all()}
    for c in criteria:
        old = before.get(str(c.key)) if c.key else None
        if old is None:
            continue
        changed = CriterionSnapshot.of(old).content() != CriterionSnapshot.of(c, "").content()
        c.provenance_model = c.provenance_model or old.provenance_model
        if (
            old.provenance == Criterion.Provenance.LLM
            and changed
            and c.provenance != Criterion.Provenance.LLM
        ):
            c.provenance = Criterion.Provenance.HYBRID
        elif c.provenance == Criterion.Provenance.HUMAN:
            c.provenance = old.provenance


@transaction.atomic
def rubric_version_create(
    *,
    rubric: Rubric,
    criteria: list[CriterionInput],
    author: User | AnonymousUser | None = None,
    author_model: str = "",
    note: str = "",
    base_number: int | None = None,
    check_base: bool = False,
    enforce_checks: bool = True,
) -> RubricVersion:
    """Append an immutable version with ``criteria`` and make it the current one.

    Takes the rubric row lock, so concurrent saves are serialised: with ``check_base``, a
    save whose ``base_number`` is no longer current raises StaleVersionError (HTTP 409)
    and writes nothing. Hard errors from the editing checks refuse the save unless
    ``enforce_checks`` is off (imports keep source data as it is).

    Criterion texts are stored exactly as given (a text of only whitespace is refused):
    imported texts must stay byte-identical through later versions, so any tidying of
    what a person types belongs where they type it (``rubric_edits.clean_fields``).
    """
    validate_criteria(criteria)
    snapshots = (CriterionSnapshot.of(c, str(c.key or i)) for i, c in enumerate(criteria))
    errors = (
        [issue for issue in check_criteria(snapshots) if issue.level == "error"]
        if enforce_checks
        else []
    )
    if errors:
        raise ApplicationError(
            "The rubric has errors: " + "; ".join(e.message for e in errors),
            extra={
                "errors": [{"key": e.key, "code": e.code, "message": e.message} for e in errors]
            },
        )
    rubric = Rubric.objects.select_for_update().get(pk=rubric.pk)
    parent = rubric.current_version
    current = parent.number if parent else None
    if check_base and base_number != current:
        raise StaleVersionError(base=base_number, current=current or 0)
    status_after_edit(rubric.status)  # refuses archived rubrics before writing
    _carry_provenance(criteria, parent)
    number = (parent.number + 1) if parent else 1
    version = RubricVersion.objects.create(
        rubric=rubric,
        number=number,
        parent=parent,
        author=author if author is not None and author.is_authenticated else None,
        author_model=author_model,
        note=note,
    )
    Criterion.objects.bulk_create(
        Criterion(
            version=version,
            key=c.key or uuid.uuid4(),
            position=position,
            text=c.text,
            points=c.points,
            category=c.category,
            kind=c.kind,
            tags=list(c.tags),
            provenance=c.provenance,
            provenance_model=c.provenance_model,
        )
        for position, c in enumerate(criteria)
    )
    rubric.current_version = version
    rubric.status = status_after_edit(rubric.status)
    rubric.save(update_fields=["current_version", "status", "updated_at"])
    audit(
        project=rubric.project,
        actor=author,
        action="rubric.version",
        target=str(rubric.pk),
        version=number,
        author_model=author_model,
    )
    return version


@transaction.atomic
def rubric_create(
    *,
    project: Project,
    title: str,
    criteria: list[CriterionInput],
    prompt: Prompt | None = None,
    author: User | AnonymousUser | None = None,
    author_model: str = "",
    note: str = "",
    enforce_checks: bool = True,
) -> Rubric:
    if prompt is not None and prompt.project_id != project.pk:
        raise ApplicationError("The prompt belongs to another project.")
    if prompt is not None and Rubric.objects.filter(prompt=prompt).exists():
        raise ApplicationError("This prompt already has a rubric.")
    rubric = Rubric.objects.create(project=project, prompt=prompt, title=title[:300])
    rubric_version_create(
        rubric=rubric,
        criteria=criteria,
        author=author,
        author_model=author_model,
        note=note,
        enforce_checks=enforce_checks,
    )
    rubric.refresh_from_db()
    return rubric


@transaction.atomic
def rubric_version_restore(
    *, rubric: Rubric, number: int, author: User | AnonymousUser | None
) -> RubricVersion:
    """Make a new version whose criteria (keys included) are those of version ``number``."""
    old = RubricVersion.objects.filter(rubric=rubric, number=number).first()
    if old is None:
        raise ApplicationError(f"This rubric has no version {number}.")
    criteria = [
        CriterionInput(
            text=c.text,
            points=c.points,
            category=c.category,
            kind=c.kind,
            tags=list(c.tags),
            provenance=c.provenance,
            provenance_model=c.provenance_model,
            key=c.key,
        )
        for c in old.criteria.order_by("position")
    ]
    return rubric_version_create(
        rubric=rubric,
        criteria=criteria,
        author=author,
        note=f"Restored version {number}",
        enforce_checks=False,
    )
