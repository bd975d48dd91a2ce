"""Reads of rubrics, versions and criteria (and the editor's state), scoped through a project
the caller already checked access to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, QuerySet
from django.http import Http404

from annotation.projects.models import Project
from annotation.prompts.importers.single_rubric import to_healthbench, to_rar
from annotation.prompts.models import Prompt
from annotation.rubrics.logic import CheckIssue, CriterionSnapshot, check_criteria
from annotation.rubrics.models import (
    Criterion,
    CriterionComment,
    Rubric,
    RubricDraft,
    RubricReviewDecision,
    RubricVersion,
)


def rubric_for_prompt(*, prompt: Prompt) -> Rubric | None:
    return Rubric.objects.filter(prompt=prompt).select_related("current_version").first()


def project_wide_rubrics(*, project: Project) -> QuerySet[Rubric]:
    return Rubric.objects.filter(project=project, prompt__isnull=True).select_related(
        "current_version"
    )


def criteria_of(*, rubric: Rubric | None) -> list[Criterion]:
    if rubric is None or rubric.current_version_id is None:
        return []
    return list(Criterion.objects.filter(version_id=rubric.current_version_id).order_by("position"))


def rubric_get(*, project: Project, rubric_id: int) -> Rubric:
    rubric = (
        Rubric.objects.filter(project=project, pk=rubric_id)
        .select_related("current_version", "approved_version", "prompt")
        .first()
    )
    if rubric is None:
        raise Http404("No such rubric.")
    return rubric


def versions_of(*, rubric: Rubric) -> QuerySet[RubricVersion]:
    return (
        RubricVersion.objects.filter(rubric=rubric)
        .select_related("author", "parent")
        .annotate(criteria_count=Count("criteria"))
        .order_by("-number")
    )


def version_get(*, rubric: Rubric, number: int) -> RubricVersion:
    version = RubricVersion.objects.filter(rubric=rubric, number=number).first()
    if version is None:
        raise Http404("No such version.")
    return version


def version_snapshots(*, version_id: int) -> list[CriterionSnapshot]:
    """A version's criteria as plain snapshots, in order, for diffs and merges."""
    return [
        CriterionSnapshot.of(c)
        for c in Criterion.objects.filter(version_id=version_id).order_by("position")
    ]


def criterion_dict(c: Criterion) -> dict[str, Any]:
    return {
        "key": str(c.key),
        "text": c.text,
        "points": c.points,
        "category": c.category,
        "kind": c.kind,
        "tags": list(c.tags),
        "provenance": c.provenance,
        "provenance_model": c.provenance_model,
    }


def version_dicts(version_id: int | None) -> list[dict[str, Any]]:
    if version_id is None:
        return []
    rows = Criterion.objects.filter(version_id=version_id).order_by("position")
    return [criterion_dict(c) for c in rows]


@dataclass
class EditorState:
    """What the editor shows: the person's draft (or the current version), each criterion
    with its check issues, open comments and whether it differs from the saved version."""

    rubric: Rubric
    criteria: list[dict[str, Any]]
    draft: RubricDraft | None
    issues: list[CheckIssue]  # rubric-level issues (no criterion key)
    has_errors: bool
    comments: dict[str, list[CriterionComment]]  # by criterion key ("" = whole rubric)
    removed: int  # criteria of the saved version that the draft dropped
    general_comments: list[CriterionComment]  # on the whole rubric
    latest_decision: RubricReviewDecision | None
    positive_points: float = 0.0
    conflict_base_stale: bool = False  # a newer version was saved after the draft started

    @property
    def dirty(self) -> bool:
        return self.draft is not None


def rubric_editor_state(*, rubric: Rubric, user: User | AnonymousUser) -> EditorState:
    """Three queries whatever the rubric's size: saved criteria, the draft, comments
    (plus one for the latest review decision)."""
    saved = version_dicts(rubric.current_version_id)
    draft = (
        RubricDraft.objects.filter(rubric=rubric, user=user).first()
        if user.is_authenticated
        else None
    )
    criteria = [dict(c) for c in (draft.criteria if draft else saved)]
    saved_by_key = {c["key"]: c for c in saved}
    issues = check_criteria(
        CriterionSnapshot(
            c["key"],
            c["text"].strip(),
            float(c["points"]),
            c["category"],
            c["kind"],
            tuple(c["tags"]),
        )
        for c in criteria
    )
    by_key: dict[str | None, list[CheckIssue]] = {}
    for issue in issues:
        by_key.setdefault(issue.key, []).append(issue)
    comments: dict[str, list[CriterionComment]] = {}
    for comment in CriterionComment.objects.filter(rubric=rubric).select_related(
        "author", "resolved_by"
    ):
        comments.setdefault(str(comment.criterion_key or ""), []).append(comment)
    for c in criteria:
        old = saved_by_key.get(c["key"])
        fields = ("text", "points", "category", "kind", "tags")
        c["state"] = (
            "added" if old is None else "changed" if any(old[f] != c[f] for f in fields) else ""
        )
        c["issues"] = by_key.get(c["key"], [])
        c["comments"] = comments.get(c["key"], [])
        c["open_comments"] = sum(x.resolved_at is None for x in c["comments"])
    keys = {c["key"] for c in criteria}
    current_number = rubric.current_version.number if rubric.current_version else None
    return EditorState(
        rubric=rubric,
        criteria=criteria,
        draft=draft,
        issues=by_key.get(None, []),
        has_errors=any(i.level == "error" for i in issues),
        comments=comments,
        removed=sum(k not in keys for k in saved_by_key) if draft else 0,
        general_comments=comments.get("", []),
        latest_decision=RubricReviewDecision.objects.filter(rubric=rubric)
        .select_related("reviewer", "version")
        .first(),
        positive_points=sum(float(c["points"]) for c in criteria if float(c["points"]) > 0),
        conflict_base_stale=draft is not None
        and not draft.conflicts
        and draft.base_number != current_number,
    )


def comment_get(*, rubric: Rubric, comment_id: int) -> CriterionComment:
    comment = CriterionComment.objects.filter(rubric=rubric, pk=comment_id).first()
    if comment is None:
        raise Http404("No such comment.")
    return comment


def project_wide_criteria(*, project: Project) -> list[tuple[Rubric, list[Criterion]]]:
    """Project-wide rubrics (not archived) with their current criteria: two queries."""
    rubrics = list(project_wide_rubrics(project=project).exclude(status=Rubric.Status.ARCHIVED))
    by_version: dict[int, list[Criterion]] = {}
    versions = [r.current_version_id for r in rubrics if r.current_version_id]
    for c in Criterion.objects.filter(version_id__in=versions).order_by("version_id", "position"):
        by_version.setdefault(c.version_id, []).append(c)
    return [(r, by_version.get(r.current_version_id or 0, [])) for r in rubrics]


def rubric_export_json(*, rubric: Rubric, shape: str, number: int | None = None) -> dict[str, Any]:
    """One saved version of a rubric in HealthBench or RaR shape (the current version
    unless ``number`` names another)."""
    version = (
        version_get(rubric=rubric, number=number) if number is not None else rubric.current_version
    )
    criteria = version_dicts(version.pk if version else None)
    prompt = rubric.prompt
    prompt_id = prompt.external_id if prompt else None
    if shape == "rar":
        return to_rar(
            criteria,
            prompt_id=prompt_id,
            question=prompt.last_user_message if prompt else None,
            reference_answer=prompt.reference_answer if prompt else "",
        )
    return to_healthbench(
        criteria, prompt_id=prompt_id, messages=prompt.messages if prompt else None
    )
