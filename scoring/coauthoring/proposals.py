"""Accepting or rejecting the proposals a co-authoring job made: each proposal shown as a
criterion-level diff against the version it was made on, and the chosen changes merged
three-way into the rubric's current criteria. Accepted criteria become a new rubric version
through annotation's services, with provenance llm and the model's name; nothing is applied
half-way.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from annotation.errors import ApplicationError
from annotation.projects.services import audit
from annotation.prompts.models import Prompt
from annotation.rubrics import services as rubric_services
from annotation.rubrics.logic import CriterionSnapshot, diff_criteria, merge_criteria
from annotation.rubrics.models import Criterion, Rubric, RubricVersion
from annotation.rubrics.selectors import version_dicts
from scoring.coauthoring.models import Proposal


def _snapshot(c: dict[str, Any]) -> CriterionSnapshot:
    return CriterionSnapshot(
        str(c["key"]),
        c["text"].strip(),
        float(c["points"]),
        c["category"],
        c["kind"],
        tuple(c["tags"]),
    )


def proposal_changes(proposal: Proposal) -> list[Any]:
    """The proposal as a criterion-level diff against the version it was made on."""
    return [
        change
        for change in diff_criteria(
            [_snapshot(c) for c in proposal.base_criteria],
            [_snapshot(c) for c in proposal.criteria],
        )
        if change.status != "unchanged"
    ]


def _selected(proposal: Proposal, accepted: set[str]) -> list[dict[str, Any]]:
    """The proposal's base criteria with only the accepted changes made."""
    proposed = {c["key"]: c for c in proposal.criteria}
    out = [dict(c) for c in proposal.base_criteria]
    order = [c["key"] for c in proposal.criteria]
    for change in proposal_changes(proposal):
        if change.key not in accepted:
            continue
        if change.status == "removed":
            out = [c for c in out if c["key"] != change.key]
        elif change.status == "added":
            before = set(order[: order.index(change.key)])
            anchor = max((i for i, c in enumerate(out) if c["key"] in before), default=-1)
            out.insert(anchor + 1, dict(proposed[change.key]))
        else:  # changed (or moved): the proposal's content in place
            at = next(i for i, c in enumerate(out) if c["key"] == change.key)
            out[at] = {
                **dict(proposed[change.key]),
                "provenance": "llm",
                "provenance_model": proposal.model,
            }
    return out


def _apply(
    current: list[dict[str, Any]], proposal: Proposal, accepted: set[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The accepted changes merged into the current criteria, three-way from the version
    the proposal was made on: a criterion a person changed since is never overwritten
    (that change is skipped and reported), and edits to other criteria stay."""
    mine = _selected(proposal, accepted)
    result = merge_criteria(
        [_snapshot(c) for c in proposal.base_criteria],
        [_snapshot(c) for c in current],
        [_snapshot(c) for c in mine],
    )
    conflicts = {c.key for c in result.conflicts}
    theirs = {c["key"]: c for c in current}
    ours = {c["key"]: c for c in mine}
    out = []
    for snapshot in result.criteria:
        if snapshot.key in conflicts:
            if snapshot.key in theirs:  # the person's version stays
                out.append(theirs[snapshot.key])
        elif snapshot.key in theirs and _snapshot(theirs[snapshot.key]) == snapshot:
            out.append(theirs[snapshot.key])
        else:
            out.append(ours[snapshot.key])
    return out, sorted(conflicts & accepted)


@transaction.atomic
def proposal_decide(
    *, proposal: Proposal, actor: User, accept: Sequence[str] | None
) -> RubricVersion | None:
    """Accept the changes whose criterion keys are in ``accept`` (None: all of them) as one
    new rubric version, or reject the proposal (an empty ``accept``)."""
    if proposal.prompt_id is not None:  # serialises the creation of a first rubric
        Prompt.objects.select_for_update().filter(pk=proposal.prompt_id).first()
    proposal = Proposal.objects.select_for_update().get(pk=proposal.pk)
    if proposal.status != Proposal.Status.PENDING:
        raise ApplicationError(f"This proposal is already {proposal.get_status_display().lower()}.")
    keys = {c.key for c in proposal_changes(proposal)}
    chosen = keys if accept is None else {str(k) for k in accept} & keys
    if accept and not chosen:
        raise ApplicationError("None of those changes belongs to this proposal.")
    proposal.decided_by, proposal.decided_at = actor, timezone.now()
    version = None
    if chosen:
        rubric = proposal.rubric or Rubric.objects.filter(prompt=proposal.prompt).first()
        if rubric is not None:
            rubric = Rubric.objects.select_for_update(of=("self",)).get(pk=rubric.pk)
        current = version_dicts(rubric.current_version_id if rubric else None)
        criteria, skipped = _apply(current, proposal, chosen)
        note = (
            f"Accepted {len(chosen) - len(skipped)} of {len(keys)} changes proposed by "
            f"{proposal.model} ({proposal.get_kind_display().lower()}, {proposal.template_version})"
        )
        inputs = [
            rubric_services.CriterionInput(
                text=c["text"],
                points=float(c["points"]),
                category=c["category"],
                kind=c["kind"],
                tags=list(c["tags"]),
                provenance=c.get("provenance", Criterion.Provenance.HUMAN),
                provenance_model=c.get("provenance_model", ""),
                key=uuid.UUID(str(c["key"])),
            )
            for c in criteria
        ]
        if rubric is None:
            if proposal.prompt is None:
                raise ApplicationError("This proposal has no prompt to make a rubric for.")
            rubric = rubric_services.rubric_create(
                project=proposal.project,
                prompt=proposal.prompt,
                title=f"Rubric for {proposal.prompt.external_id}",
                criteria=inputs,
                author=actor,
                author_model=proposal.model,
                note=note,
            )
            version = rubric.current_version
            assert version is not None  # rubric_create makes the first version
        else:
            version = rubric_services.rubric_version_create(
                rubric=rubric, criteria=inputs, author=actor, author_model=proposal.model, note=note
            )
        proposal.rubric = rubric
        proposal.result_version = version.number
        proposal.status = (
            Proposal.Status.ACCEPTED if chosen == keys and not skipped else Proposal.Status.PARTIAL
        )
    else:
        proposal.status = Proposal.Status.REJECTED
    proposal.save(update_fields=["status", "decided_by", "decided_at", "rubric", "result_version"])
    audit(
        project=proposal.project,
        actor=actor,
        action=f"proposal.{proposal.status}",
        target=str(proposal.pk),
        version=proposal.result_version,
    )
    return version
