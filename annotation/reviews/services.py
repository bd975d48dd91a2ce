"""Expert review of pairwise judgments: claiming the next item, committing a decision (then
the judge's verdict may be shown), undo, consensus and adjudication.

Claiming is safe under concurrency: candidate slots are locked with ``SELECT … FOR UPDATE
SKIP LOCKED`` on PostgreSQL, and the claim itself is an update guarded by the slot's state,
so two reviewers asking at the same moment never get the same slot (and on SQLite, whose
writes are serialised, the guarded update alone decides). A reviewer never gets two slots
of one item (a unique constraint).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from annotation.errors import ApplicationError
from annotation.projects.models import AuditEvent
from annotation.projects.services import audit
from annotation.prompts.models import PreferenceLabel
from annotation.reviews.models import PairwiseReview, ReviewItem, ReviewQueue, ReviewSlot
from annotation.reviews.queues import WINNERS, _rng
from annotation.reviews.signals import queue_settled

SHOWN = {"A": False, "B": True}  # the shown letter → "is it the item's b?" (before swapping)
CANDIDATES_PER_TRY = 50
UNDO_ACTION = "review.undo"  # the audit action; its target is the slot's id


# --- claiming -----------------------------------------------------------------------------


def _order_keys(queue: ReviewQueue, reviewer_id: int) -> Callable[[int], bytes]:
    """This reviewer's place for each item: a seeded permutation, different per reviewer
    (the SHA-256 of "seed:reviewer:item")."""
    prefix = f"{queue.seed}:{reviewer_id}:".encode()
    return lambda item_id: hashlib.sha256(prefix + b"%d" % item_id).digest()


def _order_key(queue: ReviewQueue, reviewer_id: int, item_id: int) -> bytes:
    return _order_keys(queue, reviewer_id)(item_id)


def _free(now: Any) -> Q:
    return Q(status=ReviewSlot.Status.OPEN) | Q(status=ReviewSlot.Status.HELD, locked_until__lt=now)


def slot_next(*, queue: ReviewQueue, reviewer: User) -> ReviewSlot | None:
    """The slot this reviewer holds, else a newly claimed one (in the reviewer's own seeded
    order of items), else None when nothing is left for them."""
    now = timezone.now()
    held = (
        ReviewSlot.objects.filter(
            item__queue=queue, reviewer=reviewer, status=ReviewSlot.Status.HELD
        )
        .order_by("claimed_at")
        .first()
    )
    if held is not None:
        if held.locked_until is None or held.locked_until < now + timedelta(minutes=1):
            ReviewSlot.objects.filter(pk=held.pk).update(locked_until=_lock_until(queue, now))
        return held
    # the reviewer's slots of any queue: the items below are this queue's
    mine = ReviewSlot.objects.filter(reviewer=reviewer).values("item_id")
    candidates = list(
        ReviewItem.objects.filter(queue=queue, final="")
        .exclude(pk__in=mine)
        .filter(pk__in=ReviewSlot.objects.filter(_free(now)).values("item_id"))
        .order_by()  # sorted below, in the reviewer's order: no join for the queue's
        .values_list("pk", flat=True)
    )
    candidates.sort(key=_order_keys(queue, reviewer.pk))
    # First skipping slots another claim has locked this instant; then, if every candidate
    # was locked, once more waiting for those claims to finish (the guarded update decides).
    for skip_locked in (True, False):
        for start in range(0, len(candidates), CANDIDATES_PER_TRY):
            batch = candidates[start : start + CANDIDATES_PER_TRY]
            slot = _claim(queue, reviewer, batch, now, skip_locked=skip_locked)
            if slot is not None:
                return slot
    return None


def _lock_until(queue: ReviewQueue, now: Any) -> Any:
    return now + timedelta(minutes=queue.lock_minutes)


@transaction.atomic
def _claim(
    queue: ReviewQueue, reviewer: User, item_ids: list[int], now: Any, *, skip_locked: bool
) -> ReviewSlot | None:
    free = ReviewSlot.objects.filter(item_id__in=item_ids).filter(_free(now))
    if connection.features.has_select_for_update_skip_locked:
        free = free.select_for_update(skip_locked=skip_locked)
    first_free: dict[int, ReviewSlot] = {}
    # Open slots before expired holds: a slow reviewer keeps theirs while others are free.
    for candidate in sorted(
        free.order_by("pk"), key=lambda s: (s.status != ReviewSlot.Status.OPEN, s.index)
    ):
        first_free.setdefault(candidate.item_id, candidate)
    for item_id in item_ids:  # the reviewer's order
        slot = first_free.get(item_id)
        if slot is None:
            continue
        swapped = _rng("sides", queue.seed, reviewer.pk, item_id).random() < 0.5
        try:
            with transaction.atomic():
                claimed = ReviewSlot.objects.filter(pk=slot.pk).filter(_free(now)).update(
                    status=ReviewSlot.Status.HELD, reviewer=reviewer, claimed_at=now,
                    locked_until=_lock_until(queue, now), swapped=swapped,
                )  # fmt: skip
        except IntegrityError:  # this reviewer holds another slot of the item already
            continue
        if claimed:
            slot.refresh_from_db()
            return slot
    return None


# --- deciding -----------------------------------------------------------------------------


def to_winner(shown: str, swapped: bool) -> str:
    """The shown choice (A = left, B = right, tie) in terms of the item's a and b."""
    if shown == "tie":
        return "tie"
    if shown not in SHOWN:
        raise ApplicationError(f"Choose A, B or tie, not “{shown}”.")
    return "b" if SHOWN[shown] != swapped else "a"


@transaction.atomic
def review_commit(
    *,
    slot: ReviewSlot,
    reviewer: User,
    shown: str,
    criteria: dict[str, str] | None = None,
    rationale: str = "",
    confidence: int | None = None,
    seconds: float = 0.0,
) -> PairwiseReview:
    """Commit the reviewer's decision on the slot they hold. ``shown`` is A, B or tie as the
    reviewer saw the sides; ``criteria`` marks (criterion key → A, B or tie, as shown)."""
    slot = ReviewSlot.objects.select_for_update().select_related("item__queue").get(pk=slot.pk)
    if slot.reviewer_id != reviewer.pk or slot.status != ReviewSlot.Status.HELD:
        raise ApplicationError("This item is no longer yours to review (its hold ran out).")
    if confidence is not None and not 1 <= confidence <= 5:
        raise ApplicationError("Confidence is between 1 and 5.")
    if not 0 <= seconds < 24 * 3600:
        seconds = 0.0
    marks = {}
    for key, value in (criteria or {}).items():
        marks[str(key)] = to_winner(value, slot.swapped)
    # A decision taken back with ``review_undo`` was revealed: the judge's verdict was seen.
    saw_judge = AuditEvent.objects.filter(
        action=UNDO_ACTION, target=str(slot.pk), actor=reviewer
    ).exists()
    review = PairwiseReview.objects.create(
        slot=slot, item=slot.item, reviewer=reviewer, winner=to_winner(shown, slot.swapped),
        shown_swapped=slot.swapped, criteria=marks, rationale=rationale.strip()[:10000],
        confidence=confidence, seconds=round(seconds, 3), saw_judge_before_commit=saw_judge,
    )  # fmt: skip
    ReviewSlot.objects.filter(pk=slot.pk).update(status=ReviewSlot.Status.DONE)
    _settle(slot.item, actor=reviewer)
    return review


@transaction.atomic
def review_flag(
    *, review: PairwiseReview, reviewer: User, judge_wrong: bool, rubric_problem: bool,
    criterion: str | None = None,
) -> PairwiseReview:  # fmt: skip
    """After the reveal: the reviewer says the judge was wrong, or the rubric has a problem
    (at a criterion, whose key is checked against the item's judge snapshot or rubric)."""
    if review.reviewer_id != reviewer.pk:
        raise ApplicationError("Only the reviewer may flag their review.")
    review.judge_wrong, review.rubric_problem = judge_wrong, rubric_problem
    review.problem_criterion = None
    if rubric_problem and criterion:
        known = _criterion_keys(review.item)
        if criterion not in known:
            raise ApplicationError("That criterion is not in this item's rubric.")
        review.problem_criterion = criterion
    review.save(update_fields=["judge_wrong", "rubric_problem", "problem_criterion"])
    return review


def _criterion_keys(item: ReviewItem) -> set[str]:
    keys = set(item.judge.get("criteria", {}))
    if item.rubric_version is not None:  # no query when the item has none
        keys |= {str(k) for k in item.rubric_version.criteria.values_list("key", flat=True)}
    return keys


@transaction.atomic
def review_undo(*, queue: ReviewQueue, reviewer: User) -> PairwiseReview | None:
    """Take back the reviewer's last decision in the queue: the item is theirs again (held,
    with a fresh lock) and a consensus it made is withdrawn. An adjudicated item stays."""
    last = (
        PairwiseReview.objects.select_for_update()
        .filter(item__queue=queue, reviewer=reviewer)
        .select_related("item", "slot")
        .order_by("-committed_at", "-id")
        .first()
    )
    if last is None:
        return None
    if last.item.final_source == ReviewItem.FinalSource.ADJUDICATED:
        raise ApplicationError("That item was adjudicated already; its decision stands.")
    slot, item = last.slot, last.item
    last.delete()
    audit(project=queue.project, actor=reviewer, action=UNDO_ACTION, target=str(slot.pk),
          item=item.pk, winner=last.winner)  # fmt: skip
    ReviewSlot.objects.filter(pk=slot.pk).update(
        status=ReviewSlot.Status.HELD, locked_until=_lock_until(queue, timezone.now()),
        claimed_at=timezone.now(),
    )  # fmt: skip
    if item.final_source == ReviewItem.FinalSource.CONSENSUS:
        _set_final(item, "", source="", actor=None)
    return last


def _settle(item: ReviewItem, *, actor: User) -> None:
    """Once every slot of the item is reviewed: agreement is the final label (consensus);
    disagreement leaves it for an adjudicator."""
    winners = list(PairwiseReview.objects.filter(item=item).values_list("winner", flat=True))
    if len(winners) < item.queue.overlap or item.final_source == ReviewItem.FinalSource.ADJUDICATED:
        return
    if len(Counter(winners)) == 1:
        _set_final(item, winners[0], source=ReviewItem.FinalSource.CONSENSUS, actor=None)


def needs_adjudication(item: ReviewItem, winners: list[str]) -> bool:
    return len(winners) >= item.queue.overlap and len(set(winners)) > 1 and not item.final


@transaction.atomic
def item_adjudicate(*, item: ReviewItem, actor: User, winner: str) -> ReviewItem:
    """An adjudicator's final label (for items whose reviewers disagreed, or to overrule)."""
    if winner not in WINNERS:
        raise ApplicationError("The final label is a, b or tie.")
    item = ReviewItem.objects.select_for_update().select_related("queue").get(pk=item.pk)
    reviews = PairwiseReview.objects.filter(item=item).count()
    if reviews < item.queue.overlap:
        raise ApplicationError(
            f"This pair has {reviews} of its {item.queue.overlap} reviews: adjudicate once all are in."
        )
    _set_final(item, winner, source=ReviewItem.FinalSource.ADJUDICATED, actor=actor)
    audit(project=item.queue.project, actor=actor, action="review_item.adjudicate",
          target=str(item.pk), winner=winner)  # fmt: skip
    return item


def _set_final(item: ReviewItem, winner: str, *, source: str, actor: User | None) -> None:
    """Record the final label and keep the expert preference label in step with it (none
    for a tie or no label)."""
    old_label = item.label_id
    item.final, item.final_source = winner, source
    item.final_by = (
        actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    )
    item.final_at = timezone.now() if winner else None
    item.label = None
    if winner in ("a", "b"):
        chosen, rejected = (
            (item.response_a_id, item.response_b_id)
            if winner == "a"
            else (item.response_b_id, item.response_a_id)
        )
        item.label, _ = PreferenceLabel.objects.get_or_create(
            prompt_id=item.prompt_id, chosen_id=chosen, rejected_id=rejected,
            source=PreferenceLabel.Source.EXPERT, defaults={"created_by": item.final_by},
        )  # fmt: skip
    item.save(update_fields=["final", "final_source", "final_by", "final_at", "label"])
    if winner and not ReviewItem.objects.filter(queue_id=item.queue_id, final="").exists():
        project_id, queue_id = item.queue.project_id, item.queue_id
        transaction.on_commit(
            lambda: queue_settled.send(sender=ReviewItem, project_id=project_id, queue_id=queue_id)
        )
    if old_label and old_label != item.label_id:
        still_used = ReviewItem.objects.filter(label_id=old_label).exists()
        if not still_used:
            PreferenceLabel.objects.filter(
                pk=old_label, source=PreferenceLabel.Source.EXPERT
            ).delete()
