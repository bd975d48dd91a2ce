"""Review queues of pairwise judgments: the pairs to review (each with the reference
verdict it is compared with), the sampling plans that choose which pairs a queue keeps
(every pair, a seeded random or stratified sample, the judge's inconsistent or
low-confidence verdicts), and making a queue, from given pairs or from the project's
imported preference labels, with the reviewer slots of each pair.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from annotation.errors import ApplicationError
from annotation.projects.models import Project
from annotation.projects.services import audit
from annotation.prompts.models import PreferenceLabel, Response
from annotation.reviews.models import ReviewItem, ReviewQueue, ReviewSlot
from annotation.rubrics.models import Rubric, RubricVersion

WINNERS = ("a", "b", "tie")
MAX_OVERLAP = 5
MAX_ITEMS = 20_000


@dataclass
class ItemInput:
    """A pair to review. ``judge`` is the reference verdict (see ``ReviewItem.judge``)."""

    prompt_id: int
    response_a_id: int
    response_b_id: int
    judge: dict[str, Any] = field(default_factory=dict)
    rubric_version_id: int | None = None


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))  # noqa: S311 - sampling


def _confidence(judge: dict[str, Any]) -> float:
    """How sure the judge was, 0 (a coin flip) to 1: from its probability where it gave one
    (a local judge), else 1 for agreeing orders and 0 for position-inconsistent ones."""
    p = judge.get("probability")
    if p is not None:
        return abs(2 * float(p) - 1)
    return 1.0 if judge.get("consistent", True) else 0.0


LOW_CONFIDENCE = 0.2  # |2P − 1| below this: P(a better) within 0.4–0.6


def sample(items: list[ItemInput], plan: str, k: int | None, seed: int) -> list[ItemInput]:
    """The items a plan keeps, in a deterministic order (seeded)."""
    rng = _rng("sample", seed)
    if plan == ReviewQueue.Plan.ALL:
        return list(items)
    if plan == ReviewQueue.Plan.INCONSISTENT:
        return [i for i in items if i.judge.get("consistent") is False]
    if plan == ReviewQueue.Plan.LOW_CONFIDENCE:
        return [i for i in items if _confidence(i.judge) < LOW_CONFIDENCE]
    if k is None or k < 1:
        raise ApplicationError("Say how many pairs to sample (k).")
    k = min(k, len(items))
    if plan == ReviewQueue.Plan.RANDOM:
        return rng.sample(items, min(k, len(items)))
    # Stratified: the same number from each verdict the judge gave (as far as each has).
    strata: dict[str, list[ItemInput]] = {}
    for item in items:
        strata.setdefault(str(item.judge.get("winner", "")), []).append(item)
    for members in strata.values():
        rng.shuffle(members)
    chosen: list[ItemInput] = []
    while len(chosen) < k and any(strata.values()):
        for name in sorted(strata):
            if strata[name] and len(chosen) < k:
                chosen.append(strata[name].pop())
    return chosen


@transaction.atomic
def review_queue_create(
    *,
    project: Project,
    actor: User,
    name: str,
    origin: str,
    items: list[ItemInput],
    plan: str = ReviewQueue.Plan.ALL,
    sample_size: int | None = None,
    overlap: int = 2,
    seed: int | None = None,
    lock_minutes: int = 15,
    show_sources: bool = False,
    source_run: int | None = None,
    judge_name: str = "",
    template_version: str = "",
) -> ReviewQueue:
    """A queue of the sampled items, each with ``overlap`` open slots."""
    if origin not in ReviewQueue.Origin.values:
        raise ApplicationError(f"Unknown queue origin “{origin}”.")
    if plan not in ReviewQueue.Plan.values:
        raise ApplicationError(f"Unknown sampling plan “{plan}”.")
    if not 1 <= overlap <= MAX_OVERLAP:
        raise ApplicationError(f"Reviewers per item (overlap) are between 1 and {MAX_OVERLAP}.")
    if not 1 <= lock_minutes <= 24 * 60:
        raise ApplicationError("An item is held between 1 minute and 24 hours.")
    name = name.strip() or "Review queue"
    seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
    _check_items(project, items)
    kept = sample(items, plan, sample_size, seed)
    if not kept:
        raise ApplicationError("The sampling plan keeps no pair: nothing to review.")
    if len(kept) > MAX_ITEMS:
        raise ApplicationError(f"A queue holds at most {MAX_ITEMS:,} pairs; sample fewer.")
    queue = ReviewQueue.objects.create(
        project=project, name=name[:200], origin=origin, plan=plan, sample_size=sample_size,
        overlap=overlap, seed=seed, lock_minutes=lock_minutes, show_sources=show_sources,
        source_run=source_run, judge_name=judge_name[:200],
        template_version=template_version[:50], created_by=actor,
    )  # fmt: skip
    made = ReviewItem.objects.bulk_create(
        ReviewItem(queue=queue, position=n, prompt_id=i.prompt_id, response_a_id=i.response_a_id,
                   response_b_id=i.response_b_id, judge=i.judge,
                   rubric_version_id=i.rubric_version_id)
        for n, i in enumerate(kept)
    )  # fmt: skip
    ReviewSlot.objects.bulk_create(
        ReviewSlot(item=item, index=s) for item in made for s in range(overlap)
    )
    audit(project=project, actor=actor, action="review_queue.create", target=str(queue.pk),
          items=len(made), plan=plan, overlap=overlap)  # fmt: skip
    return queue


def _check_items(project: Project, items: list[ItemInput]) -> None:
    """Every response exists, belongs to the item's prompt in this project; a ≠ b."""
    if not items:
        raise ApplicationError("No pairs to review.")
    ids = {i.response_a_id for i in items} | {i.response_b_id for i in items}
    found = dict(
        Response.objects.filter(pk__in=ids, prompt__project=project).values_list("pk", "prompt_id")
    )
    versions = {i.rubric_version_id for i in items if i.rubric_version_id}
    known = set(
        RubricVersion.objects.filter(pk__in=versions, rubric__project=project).values_list(
            "pk", flat=True
        )
    )
    for n, item in enumerate(items, 1):
        a, b = found.get(item.response_a_id), found.get(item.response_b_id)
        if a is None or b is None or a != item.prompt_id or b != item.prompt_id:
            raise ApplicationError(f"Pair {n}: its responses are not this project's prompt's.")
        if item.response_a_id == item.response_b_id:
            raise ApplicationError(f"Pair {n}: a response cannot be compared with itself.")
        if item.rubric_version_id and item.rubric_version_id not in known:
            raise ApplicationError(f"Pair {n}: its rubric version is not this project's.")
        if item.judge.get("winner") not in (*WINNERS, None):
            raise ApplicationError(f"Pair {n}: the reference verdict is not a, b or tie.")


def queue_from_labels(
    *,
    project: Project,
    actor: User,
    labels: list[PreferenceLabel],
    seed: int | None = None,
    **options: Any,
) -> ReviewQueue:
    """A queue of preference pairs; the dataset's label is the reference verdict. Which
    response is a is drawn per pair (seeded), so the label is not always "a". A pair whose
    prompt has an approved rubric is reviewed with it beside the responses."""
    seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
    approved = dict(
        Rubric.objects.filter(
            prompt_id__in={label.prompt_id for label in labels}, approved_version__isnull=False
        ).values_list("prompt_id", "approved_version_id")
    )
    items = []
    pairs: set[tuple[int, frozenset[int]]] = set()
    for label in labels:
        pair = (label.prompt_id, frozenset((label.chosen_id, label.rejected_id)))
        if pair in pairs:  # the same two responses labelled again (or both ways): once
            continue
        pairs.add(pair)
        chosen_first = _rng("labels", seed, label.pk).random() < 0.5
        a, b = (
            (label.chosen_id, label.rejected_id)
            if chosen_first
            else (label.rejected_id, label.chosen_id)
        )
        items.append(
            ItemInput(
                label.prompt_id,
                a,
                b,
                {"winner": "a" if chosen_first else "b", "source": label.source},
                approved.get(label.prompt_id),
            )  # fmt: skip
        )
    return review_queue_create(project=project, actor=actor, origin=ReviewQueue.Origin.LABELS,
                               items=items, seed=seed, judge_name="dataset label", **options)  # fmt: skip
