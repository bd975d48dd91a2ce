from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from django.db import transaction

from ..errors import ApplicationError
from ..models import Criterion, Project, Prompt, Rubric, RubricVersion


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


def _validate(criteria: list[CriterionInput]) -> None:
    for i, c in enumerate(criteria, start=1):
        if not c.text.strip():
            raise ApplicationError(f"Criterion {i} has no text.")
        if c.category not in Criterion.Category.values:
            raise ApplicationError(f"Criterion {i} has an unknown category '{c.category}'.")
        if c.kind not in Criterion.Kind.values:
            raise ApplicationError(f"Criterion {i} has an unknown kind '{c.kind}'.")


@transaction.atomic
def rubric_version_create(
    *,
    rubric: Rubric,
    criteria: list[CriterionInput],
    author=None,  # type: ignore[no-untyped-def]
    author_model: str = "",
    note: str = "",
) -> RubricVersion:
    """Append an immutable version with ``criteria`` and make it the current one.

    Takes the rubric row lock so concurrent saves get consecutive numbers.
    """
    _validate(criteria)
    rubric = Rubric.objects.select_for_update().get(pk=rubric.pk)
    parent = rubric.current_version
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
            text=c.text.strip(),
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
    rubric.save(update_fields=["current_version", "updated_at"])
    return version


@transaction.atomic
def rubric_create(
    *,
    project: Project,
    title: str,
    criteria: list[CriterionInput],
    prompt: Prompt | None = None,
    author=None,  # type: ignore[no-untyped-def]
    author_model: str = "",
    note: str = "",
) -> Rubric:
    if prompt is not None and prompt.project_id != project.pk:
        raise ApplicationError("The prompt belongs to another project.")
    if prompt is not None and Rubric.objects.filter(prompt=prompt).exists():
        raise ApplicationError("This prompt already has a rubric.")
    rubric = Rubric.objects.create(project=project, prompt=prompt, title=title[:300])
    rubric_version_create(
        rubric=rubric, criteria=criteria, author=author, author_model=author_model, note=note
    )
    rubric.refresh_from_db()
    return rubric
