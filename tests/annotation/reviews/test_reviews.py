"""Expert review services: sampling plans, claiming with overlap and locks (never the same
slot twice, even for two reviewers asking at the same moment on PostgreSQL), per-reviewer
seeded order and sides, commit, undo, consensus and adjudication into expert labels."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from annotation.errors import ApplicationError
from annotation.prompts.models import PreferenceLabel
from annotation.reviews import queues as queue_services
from annotation.reviews import services as review_services
from annotation.reviews.models import PairwiseReview, ReviewItem, ReviewQueue, ReviewSlot
from annotation.reviews.queues import ItemInput, sample
from annotation.reviews.services import to_winner
from tests.factories import MembershipFactory, PromptFactory, ResponseFactory, UserFactory


def _pairs(project, n, judge=None):  # type: ignore[no-untyped-def]
    items = []
    for i in range(n):
        prompt = PromptFactory(project=project)
        a = ResponseFactory(prompt=prompt, source="m1", content=f"a{i}")
        b = ResponseFactory(prompt=prompt, source="m2", content=f"b{i}")
        items.append(
            ItemInput(prompt.pk, a.pk, b.pk, judge or {"winner": "ab"[i % 2], "consistent": True})
        )
    return items


def _queue(project, owner, n=6, overlap=2, **options):  # type: ignore[no-untyped-def]
    return queue_services.review_queue_create(
        project=project, actor=owner, name="q", origin="run", items=_pairs(project, n),
        overlap=overlap, seed=7, **options,
    )  # fmt: skip


def _reviewer(project, name):  # type: ignore[no-untyped-def]
    user = UserFactory(username=name)
    MembershipFactory(project=project, user=user, role="reviewer")
    return user


def test_sampling_plans():  # type: ignore[no-untyped-def]
    items = [
        ItemInput(1, 1, 2, {"winner": w, "consistent": c, "probability": p})
        for w, c, p in [("a", True, 0.9), ("a", False, 0.55), ("b", True, 0.1), ("tie", True, None),
                        ("b", False, 0.45), ("a", True, 0.95), ("b", True, 0.2)]
    ]  # fmt: skip
    assert sample(items, "all", None, 1) == items
    assert [i.judge["consistent"] for i in sample(items, "inconsistent", None, 1)] == [False, False]
    assert {i.judge["probability"] for i in sample(items, "low_confidence", None, 1)} == {
        0.55,
        0.45,
    }
    randomly = sample(items, "random", 3, 1)
    assert len(randomly) == 3 and randomly == sample(items, "random", 3, 1)  # seeded
    assert randomly != sample(items, "random", 3, 2) or len(items) < 4
    stratified = sample(items, "stratified", 3, 1)
    assert sorted(i.judge["winner"] for i in stratified) == ["a", "b", "tie"]
    with pytest.raises(ApplicationError, match="how many pairs"):
        sample(items, "random", None, 1)


def test_a_queue_has_overlap_slots_per_item_and_checks_its_pairs(project, owner, outsider):  # type: ignore[no-untyped-def]
    queue = _queue(project, owner, n=5, overlap=3)
    assert queue.items.count() == 5
    assert ReviewSlot.objects.filter(item__queue=queue).count() == 15
    other = PromptFactory()  # another project's prompt
    bad = ResponseFactory(prompt=other)
    good = _pairs(project, 1)[0]
    for items, message in (
        ([ItemInput(good.prompt_id, good.response_a_id, bad.pk)], "not this project's"),
        ([ItemInput(good.prompt_id, good.response_a_id, good.response_a_id)], "with itself"),
        ([ItemInput(good.prompt_id, good.response_a_id, good.response_b_id, {"winner": "x"})], "a, b or tie"),
        ([], "No pairs"),
    ):  # fmt: skip
        with pytest.raises(ApplicationError, match=message):
            queue_services.review_queue_create(
                project=project, actor=owner, name="x", origin="run", items=items
            )
    with pytest.raises(ApplicationError, match="overlap"):
        queue_services.review_queue_create(
            project=project, actor=owner, name="x", origin="run", items=[good], overlap=9
        )
    assert ReviewQueue.objects.count() == 1


def test_claiming_respects_overlap_locks_and_order(project, owner):  # type: ignore[no-untyped-def]
    queue = _queue(project, owner, n=4, overlap=2)
    r1, r2, r3 = (_reviewer(project, n) for n in ("r1", "r2", "r3"))
    first = review_services.slot_next(queue=queue, reviewer=r1)
    assert (
        review_services.slot_next(queue=queue, reviewer=r1).pk == first.pk
    )  # held: the same again
    seen = {r: set() for r in (r1, r2, r3)}
    for reviewer in (r1, r2, r3):
        while (slot := review_services.slot_next(queue=queue, reviewer=reviewer)) is not None:
            assert slot.item_id not in seen[reviewer]
            seen[reviewer].add(slot.item_id)
            review_services.review_commit(slot=slot, reviewer=reviewer, shown="A")
    # 4 items × 2 slots: r1 and r2 took every item, r3 found nothing left.
    assert len(seen[r1]) == len(seen[r2]) == 4 and not seen[r3]
    assert PairwiseReview.objects.count() == 8
    # Each reviewer claims in their own seeded order of items (recorded by the claims).
    from annotation.reviews.services import _order_key

    for r in (r1, r2):
        claimed = list(
            ReviewSlot.objects.filter(reviewer=r)
            .order_by("claimed_at")
            .values_list("item_id", flat=True)
        )
        assert claimed == sorted(claimed, key=lambda item_id: _order_key(queue, r.pk, item_id))


def test_an_expired_hold_goes_back_to_the_pool(project, owner):  # type: ignore[no-untyped-def]
    queue = _queue(project, owner, n=1, overlap=1)
    r1, r2 = _reviewer(project, "r1"), _reviewer(project, "r2")
    slot = review_services.slot_next(queue=queue, reviewer=r1)
    assert review_services.slot_next(queue=queue, reviewer=r2) is None
    ReviewSlot.objects.filter(pk=slot.pk).update(locked_until=timezone.now() - timedelta(seconds=1))
    taken = review_services.slot_next(queue=queue, reviewer=r2)
    assert taken.pk == slot.pk and taken.reviewer_id == r2.pk
    with pytest.raises(ApplicationError, match="no longer yours"):
        review_services.review_commit(slot=slot, reviewer=r1, shown="A")


def test_sides_are_swapped_per_reviewer_and_mapped_back(project, owner):  # type: ignore[no-untyped-def]
    queue = _queue(project, owner, n=12, overlap=1)
    reviewer = _reviewer(project, "r")
    swaps = []
    while (slot := review_services.slot_next(queue=queue, reviewer=reviewer)) is not None:
        swaps.append(slot.swapped)
        review = review_services.review_commit(
            slot=slot, reviewer=reviewer, shown="A", criteria={"k1": "B"}
        )
        assert review.winner == ("b" if slot.swapped else "a")
        assert review.criteria == {"k1": "a" if slot.swapped else "b"}
        assert review.shown_swapped == slot.swapped
    assert True in swaps and False in swaps
    assert to_winner("tie", True) == "tie"
    with pytest.raises(ApplicationError, match="Choose A, B or tie"):
        to_winner("C", False)


def test_consensus_undo_and_adjudication_make_expert_labels(project, owner, editor):  # type: ignore[no-untyped-def]
    """Item 0: both reviewers say a (consensus). Item 1: they disagree (adjudicated)."""
    queue = _queue(project, owner, n=2, overlap=2)
    r1, r2 = _reviewer(project, "r1"), _reviewer(project, "r2")
    wanted = {(r1.pk, 0): "a", (r1.pk, 1): "a", (r2.pk, 0): "a", (r2.pk, 1): "b"}
    for reviewer in (r1, r2):
        while (slot := review_services.slot_next(queue=queue, reviewer=reviewer)) is not None:
            winner = wanted[(reviewer.pk, slot.item.position)]
            shown = {"a": "A", "b": "B"}[winner]
            if slot.swapped:
                shown = {"A": "B", "B": "A"}[shown]
            review_services.review_commit(slot=slot, reviewer=reviewer, shown=shown)
    agreed, disputed = queue.items.order_by("position")
    assert (agreed.final, agreed.final_source) == ("a", "consensus")
    assert agreed.label.chosen_id == agreed.response_a_id and agreed.label.source == "expert"
    assert (disputed.final, disputed.label_id) == ("", None)

    # Undo r2's last decision: that item is r2's again and has no final label.
    last = PairwiseReview.objects.filter(reviewer=r2).order_by("-committed_at", "-id").first()
    review_services.review_undo(queue=queue, reviewer=r2)
    undone = ReviewItem.objects.get(pk=last.item_id)
    assert (undone.final, undone.label_id) == ("", None)
    assert review_services.slot_next(queue=queue, reviewer=r2).item_id == undone.pk
    assert PreferenceLabel.objects.filter(source="expert").count() == (
        0 if undone.pk == agreed.pk else 1
    )
    review_services.review_commit(
        slot=review_services.slot_next(queue=queue, reviewer=r2), reviewer=r2, shown="tie"
    )  # r2 now says tie: both items disputed or one agreed, never a stale label

    for item in ReviewItem.objects.filter(queue=queue, final=""):
        review_services.item_adjudicate(item=item, actor=editor, winner="b")
        item.refresh_from_db()
        assert (item.final, item.final_source) == ("b", "adjudicated")
        assert item.label.chosen_id == item.response_b_id and item.label.source == "expert"
    labels = PreferenceLabel.objects.filter(source="expert")
    assert labels.count() == ReviewItem.objects.filter(queue=queue).exclude(final="tie").count()


def test_undo_of_an_adjudicated_item_is_refused(project, owner, editor):  # type: ignore[no-untyped-def]
    queue = _queue(project, owner, n=1, overlap=2)
    r1, r2 = _reviewer(project, "r1"), _reviewer(project, "r2")
    for reviewer, shown in ((r1, "A"), (r2, "tie")):
        review_services.review_commit(
            slot=review_services.slot_next(queue=queue, reviewer=reviewer),
            reviewer=reviewer,
            shown=shown,
        )
    item = queue.items.get()
    assert item.final == ""  # they disagreed (A is a or b for r1; r2 said tie)
    with pytest.raises(ApplicationError, match="adjudicate once all are in"):
        review_services.item_adjudicate(
            item=_queue(project, owner, n=1).items.get(), actor=editor, winner="a"
        )
    review_services.item_adjudicate(item=item, actor=editor, winner="tie")
    item.refresh_from_db()
    assert (item.final, item.label_id) == ("tie", None)
    with pytest.raises(ApplicationError, match="adjudicated already"):
        review_services.review_undo(queue=queue, reviewer=r2)


def test_labels_queue_draws_sides_per_pair(project, owner):  # type: ignore[no-untyped-def]
    labels = []
    for i in range(10):
        prompt = PromptFactory(project=project)
        chosen = ResponseFactory(prompt=prompt, content=f"c{i}")
        rejected = ResponseFactory(prompt=prompt, content=f"r{i}")
        labels.append(
            PreferenceLabel.objects.create(prompt=prompt, chosen=chosen, rejected=rejected)
        )
    queue = queue_services.queue_from_labels(
        project=project, actor=owner, labels=labels, seed=3, name="pairs"
    )
    items = list(queue.items.all())
    assert {i.judge["winner"] for i in items} == {"a", "b"}
    by_prompt = {label.prompt_id: label for label in labels}
    for item in items:
        label = by_prompt[item.prompt_id]
        chosen = item.response_a_id if item.judge["winner"] == "a" else item.response_b_id
        assert chosen == label.chosen_id
    assert queue.judge_name == "dataset label" and queue.origin == "labels"


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_asking_at_the_same_moment_never_get_the_same_slot(project, owner):  # type: ignore[no-untyped-def]
    if connection.vendor != "postgresql":
        pytest.skip("row locks (SELECT … FOR UPDATE SKIP LOCKED) need PostgreSQL (CI)")
    queue = _queue(project, owner, n=30, overlap=1, lock_minutes=30)
    reviewers = [_reviewer(project, f"r{i}") for i in range(4)]
    claimed: dict[int, list[int]] = {r.pk: [] for r in reviewers}
    errors: list[BaseException] = []

    def ask(reviewer, barrier):  # type: ignore[no-untyped-def]
        try:
            barrier.wait()
            slot = review_services.slot_next(queue=queue, reviewer=reviewer)
            if slot is not None:
                claimed[reviewer.pk].append(slot.pk)
                review_services.review_commit(slot=slot, reviewer=reviewer, shown="A")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    for _round in range(8):
        barrier = threading.Barrier(len(reviewers))
        threads = [threading.Thread(target=ask, args=(r, barrier)) for r in reviewers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    every = [pk for slots in claimed.values() for pk in slots]
    assert len(every) == len(set(every)) == 30  # all claimed, none twice
    assert PairwiseReview.objects.count() == 30
