"""Reads for expert review: queues with their progress, what a reviewer sees of an item (the
judge's verdict only after they committed), adjudication and a reviewer's own work. Every
function takes a project already scoped by membership (``selectors.project_get_for_user``)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.http import Http404

from annotation.projects.models import Project
from annotation.prompts.models import PreferenceLabel, Response
from annotation.reviews.models import PairwiseReview, ReviewItem, ReviewQueue, ReviewSlot
from annotation.rubrics.selectors import version_dicts


def review_queues_of(*, project: Project) -> list[ReviewQueue]:
    """The project's queues with ``items``, ``slots``, ``done`` and ``final`` counts."""
    return list(
        ReviewQueue.objects.filter(project=project).annotate(
            n_items=Count("items", distinct=True),
            n_final=Count("items", filter=~Q(items__final=""), distinct=True),
        )
    )


def queue_progress(*, queue: ReviewQueue) -> dict[str, int]:
    slots = ReviewSlot.objects.filter(item__queue=queue)
    counts = slots.aggregate(
        total=Count("pk"),
        done=Count("pk", filter=Q(status=ReviewSlot.Status.DONE)),
        held=Count("pk", filter=Q(status=ReviewSlot.Status.HELD)),
    )
    counts["items"] = queue.items.count()
    counts["final"] = queue.items.exclude(final="").count()
    counts["to_adjudicate"] = _contested(queue)
    return counts


def _contested(queue: ReviewQueue) -> int:
    """How many ``items_to_adjudicate`` there are, grouped from the reviews: items nobody
    reviewed are never read (nor their pairs' texts loaded to be counted)."""
    return (
        PairwiseReview.objects.filter(item__queue=queue, item__final="")
        .values("item")
        .annotate(n=Count("pk"), kinds=Count("winner", distinct=True))
        .filter(n__gte=queue.overlap, kinds__gt=1)
        .count()
    )


def preference_pairs(*, project: Project) -> QuerySet[PreferenceLabel]:
    """The project's imported (dataset) preference pairs, the ones a queue can be made of;
    expert labels are what reviews produce, never reviewed again from here."""
    return PreferenceLabel.objects.filter(
        prompt__project=project, source=PreferenceLabel.Source.DATASET
    ).order_by("pk")


def review_queue_get(*, project: Project, queue_id: int) -> ReviewQueue:
    queue = ReviewQueue.objects.filter(project=project, pk=queue_id).first()
    if queue is None:
        raise Http404("No such review queue in this project.")
    return queue


def slot_get(*, queue: ReviewQueue, slot_id: int, reviewer: User) -> ReviewSlot:
    """A slot of the queue this reviewer holds or held (anyone else's is a 404)."""
    slot = (
        ReviewSlot.objects.filter(item__queue=queue, pk=slot_id, reviewer=reviewer)
        .select_related(
            "item__prompt",
            "item__response_a",
            "item__response_b",
            "item__queue",
            "item__rubric_version",
        )
        .first()
    )
    if slot is None:
        raise Http404("No such item of yours in this queue.")
    return slot


@dataclass
class ItemView:
    """What the reviewing page shows. ``left`` and ``right`` are the responses as this
    reviewer sees them (A and B); ``judge`` is None until the reviewer has committed."""

    slot: ReviewSlot
    item: ReviewItem
    left: Response
    right: Response
    criteria: list[dict[str, Any]]
    review: PairwiseReview | None
    judge: dict[str, Any] | None


def _shown(winner: str, swapped: bool) -> str:
    """The item's a / b / tie as this reviewer's A / B / tie."""
    if winner == "tie" or not winner:
        return winner
    return {"a": "B", "b": "A"}[winner] if swapped else {"a": "A", "b": "B"}[winner]


def shown_choice(winner: str, swapped: bool) -> str:
    """A decision on the item's a / b as the reviewer made it: "A is better", "B is better"
    or "Tie" (the words of the review page's options)."""
    shown = _shown(winner, swapped)
    return {"A": "A is better", "B": "B is better", "tie": "Tie"}.get(shown, "")


def judge_order_shown(order: dict[str, Any], swapped: bool) -> dict[str, Any]:
    """One presentation order of the judge's, in this reviewer's terms. In order "ab" the
    judge read the item's a first, as its "A"; in "ba" it read b first. Its ``winner`` is
    the judge's own A / B / tie (as ``scoring.engine.pairwise.Verdict``)."""
    first = {"ab": "a", "ba": "b"}.get(str(order.get("order", "")))
    verdict = str(order.get("winner", "")).lower()
    winner = ""
    if verdict == "tie":
        winner = "tie"
    elif first and verdict in ("a", "b"):
        winner = first if verdict == "a" else {"a": "b", "b": "a"}[first]
    return {
        "explanation": str(order.get("explanation", "")),
        "first_shown": _shown(first, swapped) if first else "",
        "winner_shown": _shown(winner, swapped),
    }


def item_view(*, slot: ReviewSlot) -> ItemView:
    item = slot.item
    left, right = (
        (item.response_b, item.response_a) if slot.swapped else (item.response_a, item.response_b)
    )
    review = PairwiseReview.objects.filter(slot=slot).first()
    judge = None
    if review is not None:  # commit, then reveal: never before
        raw = item.judge or {}
        judge = {
            **raw,
            "shown": _shown(raw.get("winner", ""), slot.swapped),
            "criteria_shown": {
                k: _shown(v, slot.swapped) for k, v in raw.get("criteria", {}).items()
            },
            "yours": _shown(review.winner, slot.swapped),
            "marks_shown": {k: _shown(v, slot.swapped) for k, v in review.criteria.items()},
            "orders_shown": [
                judge_order_shown(o, slot.swapped)
                for o in raw.get("orders", [])
                if isinstance(o, dict)
            ],
        }
    return ItemView(slot, item, left, right, version_dicts(item.rubric_version_id), review, judge)


def review_history(*, queue: ReviewQueue, reviewer: User) -> list[int]:
    """The slots this reviewer committed in the queue, in the order they committed them
    (what ``k`` / ``j`` step through)."""
    return list(
        PairwiseReview.objects.filter(item__queue=queue, reviewer=reviewer)
        .order_by("committed_at", "id")
        .values_list("slot_id", flat=True)
    )


def items_to_adjudicate(*, queue: ReviewQueue) -> list[ReviewItem]:
    """Items whose reviews are all in and disagree, and that have no final label."""
    items = (
        ReviewItem.objects.filter(queue=queue, final="")
        .annotate(n=Count("reviews"), kinds=Count("reviews__winner", distinct=True))
        .filter(n__gte=queue.overlap, kinds__gt=1)
        .select_related("prompt", "response_a", "response_b")
    )
    return list(items)


def reviews_of_items(items: list[ReviewItem]) -> dict[int, list[PairwiseReview]]:
    by_item: dict[int, list[PairwiseReview]] = defaultdict(list)
    for review in PairwiseReview.objects.filter(item__in=items).select_related("reviewer"):
        by_item[review.item_id].append(review)
    return by_item


@dataclass
class MyWork:
    queue: ReviewQueue
    held: int
    done: int
    available: int
    agree: int
    compared: int

    @property
    def agreement(self) -> float | None:
        return self.agree / self.compared if self.compared else None


def my_work(*, project: Project, reviewer: User) -> list[MyWork]:
    """Per queue: the items this reviewer holds and has done, how many they could still
    take, and their agreement with the final labels (consensus or adjudicated)."""
    return [
        work_in_queue(queue=queue, reviewer=reviewer)
        for queue in ReviewQueue.objects.filter(project=project)
    ]


def pairs_for_reviewer(*, queue: ReviewQueue, reviewer: User) -> int:
    """How many pairs of the queue are this reviewer's: those they hold or decided, and
    those still open to them (one query)."""
    slots = ReviewSlot.objects.filter(item=OuterRef("pk"))
    mine = Exists(slots.filter(reviewer=reviewer))
    open_slot = Exists(slots.filter(status=ReviewSlot.Status.OPEN))
    return (
        ReviewItem.objects.filter(queue=queue)
        .filter(mine | (Q(final="") & open_slot & ~mine))
        .count()
    )


def work_in_queue(*, queue: ReviewQueue, reviewer: User) -> MyWork:
    """``my_work`` for one queue."""
    mine = ReviewSlot.objects.filter(item__queue=queue, reviewer=reviewer)
    held = mine.filter(status=ReviewSlot.Status.HELD).count()
    done = mine.filter(status=ReviewSlot.Status.DONE).count()
    available = (
        ReviewItem.objects.filter(queue=queue, final="")
        .exclude(pk__in=mine.values("item_id"))
        .filter(slots__status=ReviewSlot.Status.OPEN)
        .distinct()
        .count()
    )
    reviews = PairwiseReview.objects.filter(item__queue=queue, reviewer=reviewer).exclude(
        item__final=""
    )
    agree = compared = 0
    for winner, final in reviews.values_list("winner", "item__final"):
        compared += 1
        agree += winner == final
    return MyWork(queue, held, done, available, agree, compared)
