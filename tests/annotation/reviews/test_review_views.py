"""The review pages: who may do what (outsiders 404, viewers read but never review), commit
then reveal (the judge's verdict is not in the HTML before the commit), sides mapped for a
reviewer who sees them swapped, undo, flags, adjudication, My work, CSRF and bad input."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from annotation.prompts.models import PreferenceLabel
from annotation.reviews import queues as queue_services
from annotation.reviews import services as review_services
from annotation.reviews.models import PairwiseReview, ReviewItem, ReviewQueue, ReviewSlot
from annotation.reviews.queues import ItemInput
from annotation.rubrics import services as rubric_services
from annotation.rubrics.services import CriterionInput
from tests.factories import MembershipFactory, PromptFactory, ResponseFactory, UserFactory

HX = {"HTTP_HX_REQUEST": "true"}
SENTINEL = "JUDGE-EXPLANATION-SENTINEL"
# Markup that only the revealed verdict has.
VERDICT_MARKUP = ('id="judge-verdict"', 'class="judge-mark"', "You agree", "You differ")


@pytest.fixture
def rubric(project, owner):  # type: ignore[no-untyped-def]
    return rubric_services.rubric_create(
        project=project,
        title="Every answer",
        author=owner,
        criteria=[
            CriterionInput(text="States the dose plainly", points=5),
            CriterionInput(text="Warns about interactions", points=3),
        ],
    )


@pytest.fixture
def keys(rubric):  # type: ignore[no-untyped-def]
    return [str(k) for k in rubric.current_version.criteria.order_by("position").values_list("key", flat=True)]  # fmt: skip


def _judge(winner: str, keys: list[str]) -> dict:  # type: ignore[type-arg]
    """A judge's snapshot: both orders agreeing on ``winner`` (a or b), per criterion too."""
    first = {"a": "A", "b": "B"}[winner]
    second = {"a": "B", "b": "A"}[winner]
    return {
        "winner": winner,
        "consistent": True,
        "probability": None,
        "orders": [
            {"order": "ab", "winner": first, "explanation": f"{SENTINEL} read a first"},
            {"order": "ba", "winner": second, "explanation": f"{SENTINEL} read b first"},
        ],
        "criteria": {keys[0]: winner, keys[1]: "tie"},
    }


def _queue(project, owner, rubric, keys, *, n=6, overlap=2, name="Round 1"):  # type: ignore[no-untyped-def]
    items = []
    for i in range(n):
        prompt = PromptFactory(
            project=project, messages=[{"role": "user", "content": f"Question {i}?"}]
        )
        a = ResponseFactory(prompt=prompt, source="model-x", content=f"pair {i} response a")
        b = ResponseFactory(prompt=prompt, source="model-y", content=f"pair {i} response b")
        items.append(ItemInput(prompt.pk, a.pk, b.pk, _judge("a", keys), rubric.current_version_id))
    return queue_services.review_queue_create(
        project=project, actor=owner, name=name, origin="run", items=items, overlap=overlap,
        seed=11, judge_name="judge-1",
    )  # fmt: skip


@pytest.fixture
def queue(project, owner, rubric, keys):  # type: ignore[no-untyped-def]
    return _queue(project, owner, rubric, keys)


def _reviewer(project, name):  # type: ignore[no-untyped-def]
    user = UserFactory(username=name)
    MembershipFactory(project=project, user=user, role="reviewer")
    return user


def _client(user, **kwargs) -> Client:  # type: ignore[no-untyped-def]
    client = Client(**kwargs)
    client.force_login(user)
    return client


def _urls(queue, slot):  # type: ignore[no-untyped-def]
    slug, q = queue.project.slug, queue.pk
    return {
        "list": reverse("annotation:review_queues", args=[slug]),
        "mine": reverse("annotation:review_mine", args=[slug]),
        "next": reverse("annotation:review_next", args=[slug, q]),
        "item": reverse("annotation:review_item", args=[slug, q, slot.pk]),
        "commit": reverse("annotation:review_commit", args=[slug, q, slot.pk]),
        "flag": reverse("annotation:review_flag", args=[slug, q, slot.pk]),
        "undo": reverse("annotation:review_undo", args=[slug, q]),
        "adjudicate": reverse("annotation:review_adjudicate", args=[slug, q]),
    }


def _commit(client, queue, slot, choice="A", htmx=True, **fields):  # type: ignore[no-untyped-def]
    data = {"choice": choice, "seconds": "4.5", **fields}
    return client.post(_urls(queue, slot)["commit"], data, **(HX if htmx else {}))


def _absent(html: str) -> None:
    assert SENTINEL not in html
    for markup in VERDICT_MARKUP:
        assert markup not in html, markup


# --- who may do what ----------------------------------------------------------------------


def test_the_outsider_gets_404_everywhere(queue, reviewer, outsider):  # type: ignore[no-untyped-def]
    slot = review_services.slot_next(queue=queue, reviewer=reviewer)
    urls = _urls(queue, slot)
    client = _client(outsider)
    for name in ("list", "mine", "next", "item", "adjudicate"):
        assert client.get(urls[name]).status_code == 404, name
    for name in ("list", "commit", "flag", "undo", "adjudicate"):
        assert client.post(urls[name], {"choice": "A", "overlap": "2"}).status_code == 404, name
    assert ReviewQueue.objects.count() == 1
    assert not PairwiseReview.objects.exists()


def test_a_viewer_reads_the_queues_but_cannot_review(queue, reviewer, viewer):  # type: ignore[no-untyped-def]
    slot = review_services.slot_next(queue=queue, reviewer=reviewer)
    urls = _urls(queue, slot)
    client = _client(viewer)
    page = client.get(urls["list"])
    assert page.status_code == 200
    html = page.content.decode()
    assert "Round 1" in html
    assert urls["next"] not in html  # no Review button
    assert 'name="overlap"' not in html  # no form to make a queue
    assert client.get(urls["mine"]).status_code == 200
    denied = client.get(urls["next"])
    assert denied.status_code == 403
    assert "This needs the reviewer role" in denied.content.decode()
    for name in ("commit", "flag", "undo"):
        assert client.post(urls[name], {"choice": "A"}).status_code == 403, name
    assert client.get(urls["adjudicate"]).status_code == 403
    assert (
        client.post(urls["list"], {"name": "x", "plan": "all", "overlap": "1"}).status_code == 403
    )
    assert not ReviewSlot.objects.filter(reviewer=viewer).exists()  # nothing was claimed
    assert not PairwiseReview.objects.exists()
    assert ReviewQueue.objects.count() == 1


def test_a_reviewer_reviews_but_neither_makes_queues_nor_adjudicates(queue, reviewer):  # type: ignore[no-untyped-def]
    client = _client(reviewer)
    urls = _urls(queue, ReviewSlot(pk=0))
    html = client.get(urls["list"]).content.decode()
    assert urls["next"] in html and urls["adjudicate"] not in html
    assert 'name="overlap"' not in html
    claimed = client.get(urls["next"])
    slot = ReviewSlot.objects.get(reviewer=reviewer)
    assert claimed.status_code == 302
    assert claimed["Location"] == _urls(queue, slot)["item"]
    assert client.get(urls["adjudicate"]).status_code == 403
    assert (
        client.post(urls["list"], {"name": "x", "plan": "all", "overlap": "1"}).status_code == 403
    )
    assert ReviewQueue.objects.count() == 1


def test_a_reviewer_never_opens_another_reviewers_slot(project, queue, reviewer, owner):  # type: ignore[no-untyped-def]
    other = _reviewer(project, "second-reviewer")
    slot = review_services.slot_next(queue=queue, reviewer=other)
    urls = _urls(queue, slot)
    for user in (reviewer, owner):
        client = _client(user)
        assert client.get(urls["item"]).status_code == 404
        assert client.post(urls["commit"], {"choice": "A"}).status_code == 404
        assert client.post(urls["flag"], {"judge_wrong": "on"}).status_code == 404
    assert not PairwiseReview.objects.exists()
    slot.refresh_from_db()
    assert slot.reviewer == other and slot.status == ReviewSlot.Status.HELD


# --- making a queue from preference pairs -------------------------------------------------


def _labels(project, n=3, source=PreferenceLabel.Source.DATASET):  # type: ignore[no-untyped-def]
    labels = []
    for i in range(n):
        prompt = PromptFactory(project=project)
        chosen = ResponseFactory(prompt=prompt, content=f"chosen {source} {i}")
        rejected = ResponseFactory(prompt=prompt, content=f"rejected {source} {i}")
        labels.append(
            PreferenceLabel.objects.create(
                prompt=prompt, chosen=chosen, rejected=rejected, source=source
            )
        )
    return labels


def test_an_editor_makes_a_queue_from_the_imported_pairs_only(project, editor):  # type: ignore[no-untyped-def]
    dataset = _labels(project, 3)
    _labels(project, 1, source=PreferenceLabel.Source.EXPERT)
    client = _client(editor)
    url = reverse("annotation:review_queues", args=[project.slug])
    assert "3 imported preference pairs" in client.get(url).content.decode()
    answer = client.post(
        url,
        {"name": "Pairs", "plan": "all", "k": "", "overlap": "3", "lock_minutes": "20",
         "show_sources": "on"},
        follow=True,
    )  # fmt: skip
    assert answer.status_code == 200
    assert "Queue “Pairs” made: 3 pairs, 3 reviewers each." in answer.content.decode()
    queue = ReviewQueue.objects.get()
    assert (queue.origin, queue.overlap, queue.lock_minutes, queue.show_sources) == (
        "labels", 3, 20, True,
    )  # fmt: skip
    pairs = {frozenset((i.response_a_id, i.response_b_id)) for i in queue.items.all()}
    assert pairs == {frozenset((label.chosen_id, label.rejected_id)) for label in dataset}
    for item in queue.items.all():  # the dataset's label is the reference verdict
        label = next(x for x in dataset if x.prompt_id == item.prompt_id)
        chosen = item.response_a_id if item.judge["winner"] == "a" else item.response_b_id
        assert chosen == label.chosen_id
    assert ReviewSlot.objects.filter(item__queue=queue).count() == 9


def test_random_plan_samples_k_pairs(project, owner):  # type: ignore[no-untyped-def]
    _labels(project, 5)
    client = _client(owner)
    url = reverse("annotation:review_queues", args=[project.slug])
    client.post(
        url, {"name": "Some", "plan": "random", "k": "2", "overlap": "1", "lock_minutes": "5"}
    )
    queue = ReviewQueue.objects.get()
    assert (queue.plan, queue.sample_size, queue.items.count()) == ("random", 2, 2)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"overlap": "9"}, "between 1 and 5"),
        ({"overlap": "two"}, "Reviewers per item is a whole number"),
        ({"plan": "random", "k": ""}, "how many pairs to sample"),
        ({"plan": "inconsistent"}, "Unknown sampling plan"),
        ({"lock_minutes": "0"}, "between 1 minute and 24 hours"),
        ({"name": "bad\x00name"}, "NUL character"),
    ],
)
def test_bad_queue_input_is_a_clear_error_that_changes_nothing(project, editor, fields, message):  # type: ignore[no-untyped-def]
    _labels(project, 3)
    data = {"name": "Q", "plan": "all", "k": "", "overlap": "2", "lock_minutes": "15", **fields}
    answer = _client(editor).post(reverse("annotation:review_queues", args=[project.slug]), data)
    assert answer.status_code == 400
    assert message in answer.content.decode()
    assert not ReviewQueue.objects.exists()
    assert not ReviewItem.objects.exists()


def test_without_imported_pairs_no_queue_is_made(project, editor):  # type: ignore[no-untyped-def]
    _labels(project, 2, source=PreferenceLabel.Source.EXPERT)
    data = {"name": "Q", "plan": "all", "overlap": "2", "lock_minutes": "15"}
    answer = _client(editor).post(reverse("annotation:review_queues", args=[project.slug]), data)
    assert answer.status_code == 400
    assert "no imported preference pairs" in answer.content.decode()
    assert not ReviewQueue.objects.exists()


# --- commit, then reveal ------------------------------------------------------------------


def test_the_judges_verdict_is_not_in_the_page_before_the_commit(queue, reviewer):  # type: ignore[no-untyped-def]
    client = _client(reviewer)
    page = client.get(_urls(queue, ReviewSlot(pk=0))["next"], follow=True)
    slot = ReviewSlot.objects.get(reviewer=reviewer)
    html = page.content.decode()
    assert "Response A" in html and "Response B" in html
    assert "States the dose plainly" in html  # the rubric is shown
    assert 'id="decision"' in html
    assert "model-x" not in html and "model-y" not in html  # sources hidden
    _absent(html)
    _absent(client.get(_urls(queue, slot)["item"], **HX).content.decode())  # the fragment too

    answer = _commit(client, queue, slot, "A")
    assert answer.status_code == 200
    fragment = answer.content.decode()
    assert fragment.lstrip().startswith('<div id="review"')  # the htmx fragment, not a page
    assert SENTINEL in fragment and 'id="judge-verdict"' in fragment
    assert 'class="judge-mark"' in fragment
    assert 'id="decision"' not in fragment
    html = client.get(_urls(queue, slot)["item"]).content.decode()
    assert f"{SENTINEL} read a first" in html and f"{SENTINEL} read b first" in html


def test_the_commit_maps_the_sides_a_reviewer_saw_swapped(queue, reviewer, keys):  # type: ignore[no-untyped-def]
    from annotation.reviews.queues import _rng

    # a seed that shows this reviewer both kinds (the sides follow the seed, reviewer and
    # item ids, and ids differ from run to run on PostgreSQL)
    items = list(queue.items.values_list("pk", flat=True))
    queue.seed = next(
        seed
        for seed in range(100)
        if len({_rng("sides", seed, reviewer.pk, item).random() < 0.5 for item in items}) == 2
    )
    queue.save(update_fields=["seed"])
    client = _client(reviewer)
    seen = set()
    for _ in range(queue.items.count()):
        slot = review_services.slot_next(queue=queue, reviewer=reviewer)
        item = slot.item
        html = client.get(_urls(queue, slot)["item"]).content.decode()
        left, right = html.index('id="side-a"'), html.index('id="side-b"')
        a_at, b_at = html.index(item.response_a.content), html.index(item.response_b.content)
        # The left side (A) shows response b exactly when the slot is swapped.
        assert (left < b_at < right) == slot.swapped and (left < a_at < right) != slot.swapped
        answer = _commit(
            client, queue, slot, "A", **{f"mark-{keys[0]}": "A", f"mark-{keys[1]}": "B"}
        )
        review = PairwiseReview.objects.get(slot=slot)
        ours, theirs = ("b", "a") if slot.swapped else ("a", "b")
        assert (review.winner, review.shown_swapped) == (ours, slot.swapped)
        assert review.criteria == {keys[0]: ours, keys[1]: theirs}
        judge = client.get(_urls(queue, slot)["item"]).context["view"].judge
        # The judge chose the item's a: on a swapped page that is the reviewer's B.
        assert judge["shown"] == ("B" if slot.swapped else "A")
        assert judge["yours"] == "A"
        assert judge["criteria_shown"] == {keys[0]: judge["shown"], keys[1]: "tie"}
        fragment = answer.content.decode()
        a_side = "B" if slot.swapped else "A"  # where the item's a is on this page
        assert f"Reading {a_side} first, it chose {judge['shown']}" in fragment
        assert ("You differ" in fragment) == slot.swapped
        seen.add(slot.swapped)
    assert seen == {True, False}  # the queue's seed gives this reviewer both kinds


def test_time_on_the_pair_is_bounded_by_the_server(queue, reviewer):  # type: ignore[no-untyped-def]
    client = _client(reviewer)
    for sent, kept in (("12.25", 12.25), ("1e12", 0.0), ("nan", 0.0), ("-3", 0.0), ("x", 0.0)):
        slot = review_services.slot_next(queue=queue, reviewer=reviewer)
        _commit(client, queue, slot, "tie", seconds=sent)
        assert PairwiseReview.objects.get(slot=slot).seconds == kept, sent


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"choice": ""}, "Choose A, B or tie"),
        ({"choice": "C"}, "Choose A, B or tie"),
        ({"confidence": "9"}, "Confidence is between 1 and 5"),
        ({"confidence": "sure"}, "Confidence is a whole number"),
        ({"mark-not-a-criterion": "A"}, "not in this pair"),
        ({"rationale": "nul\x00"}, "NUL character"),
    ],
)
def test_a_bad_commit_is_a_clear_error_that_changes_nothing(queue, reviewer, keys, fields, message):  # type: ignore[no-untyped-def]
    client = _client(reviewer)
    slot = review_services.slot_next(queue=queue, reviewer=reviewer)
    data = {"choice": "A", "rationale": "kept", **fields}
    answer = client.post(_urls(queue, slot)["commit"], data, **HX)
    html = answer.content.decode()
    assert message in html
    assert 'id="decision"' in html  # the form again, with what was typed
    if "rationale" not in fields:
        assert ">kept</textarea>" in html
    _absent(html)
    assert not PairwiseReview.objects.exists()
    slot.refresh_from_db()
    assert slot.status == ReviewSlot.Status.HELD
    # Without htmx: back to the page, with the message.
    plain = client.post(_urls(queue, slot)["commit"], data, follow=True)
    assert message in plain.content.decode()
    assert not PairwiseReview.objects.exists()


def test_a_bad_criterion_mark_value_is_refused(queue, reviewer, keys):  # type: ignore[no-untyped-def]
    client = _client(reviewer)
    slot = review_services.slot_next(queue=queue, reviewer=reviewer)
    answer = _commit(client, queue, slot, "A", **{f"mark-{keys[0]}": "Q"})
    assert "Mark a criterion A, B or tie" in answer.content.decode()
    assert not PairwiseReview.objects.exists()


def test_a_second_commit_changes_nothing(queue, reviewer):  # type: ignore[no-untyped-def]
    client = _client(reviewer)
    slot = review_services.slot_next(queue=queue, reviewer=reviewer)
    _commit(client, queue, slot, "A")
    answer = _commit(client, queue, slot, "B")
    assert "already in" in answer.content.decode()
    assert PairwiseReview.objects.get(slot=slot).winner == ("b" if slot.swapped else "a")


# --- moving, undo, flags ------------------------------------------------------------------


def test_previous_and_next_step_through_the_reviewers_own_decisions(queue, reviewer):  # type: ignore[no-untyped-def]
    client = _client(reviewer)
    first = review_services.slot_next(queue=queue, reviewer=reviewer)
    _commit(client, queue, first)
    second = review_services.slot_next(queue=queue, reviewer=reviewer)
    before = client.get(_urls(queue, second)["item"]).content.decode()
    assert f'href="{_urls(queue, first)["item"]}" data-key-prev' in before
    assert "data-key-next" not in before  # no next before committing
    _commit(client, queue, second)
    html = client.get(_urls(queue, first)["item"]).content.decode()
    assert 'id="decision"' not in html  # read only
    assert SENTINEL in html
    assert f'href="{_urls(queue, second)["item"]}" data-key-next' in html
    last = client.get(_urls(queue, second)["item"]).content.decode()
    assert f'href="{_urls(queue, second)["next"]}" data-key-next' in last  # claims a new one


def test_undo_takes_back_the_last_decision_and_reopens_the_pair(queue, reviewer):  # type: ignore[no-untyped-def]
    client = _client(reviewer)
    urls = _urls(queue, ReviewSlot(pk=0))
    nothing = client.post(urls["undo"], follow=True)
    assert "no decision in this queue to undo" in nothing.content.decode()
    first = review_services.slot_next(queue=queue, reviewer=reviewer)
    _commit(client, queue, first, "A")
    second = review_services.slot_next(queue=queue, reviewer=reviewer)
    _commit(client, queue, second, "B")
    answer = client.post(urls["undo"])
    assert answer.status_code == 302 and answer["Location"] == _urls(queue, second)["item"]
    second.refresh_from_db()
    assert second.status == ReviewSlot.Status.HELD and second.reviewer == reviewer
    assert list(PairwiseReview.objects.values_list("slot_id", flat=True)) == [first.pk]
    html = client.get(answer["Location"]).content.decode()
    assert 'id="decision"' in html
    _absent(html)
    _commit(client, queue, second, "tie")
    again = PairwiseReview.objects.get(slot=second)
    assert again.winner == "tie"
    assert again.saw_judge_before_commit  # decided again after the reveal
    assert not PairwiseReview.objects.get(slot=first).saw_judge_before_commit


def test_flags_after_the_reveal_link_to_the_criterion_in_the_editor(queue, reviewer, rubric, keys):  # type: ignore[no-untyped-def]
    client = _client(reviewer)
    slot = review_services.slot_next(queue=queue, reviewer=reviewer)
    urls = _urls(queue, slot)
    early = client.post(urls["flag"], {"judge_wrong": "on"}, **HX)
    assert "Commit your decision first" in early.content.decode()
    _absent(early.content.decode())
    _commit(client, queue, slot)
    answer = client.post(
        urls["flag"],
        {"judge_wrong": "on", "rubric_problem": "on", "criterion": keys[1]},
        **HX,
    )
    review = PairwiseReview.objects.get(slot=slot)
    assert review.judge_wrong and review.rubric_problem
    assert str(review.problem_criterion) == keys[1]
    html = answer.content.decode()
    assert "Flags saved." in html
    editor_url = reverse("annotation:rubric_page", args=[queue.project.slug, rubric.pk])
    assert f'href="{editor_url}#c-{keys[1]}">Open that criterion' in html
    bad = client.post(urls["flag"], {"rubric_problem": "on", "criterion": "nope"}, **HX)
    assert "That criterion is not in this item" in bad.content.decode()
    assert str(PairwiseReview.objects.get(slot=slot).problem_criterion) == keys[1]


def test_the_reviewer_hears_when_the_queue_is_done_for_them(project, owner, rubric, keys, reviewer):  # type: ignore[no-untyped-def]
    queue = _queue(project, owner, rubric, keys, n=2, overlap=1, name="Tiny")
    client = _client(reviewer)
    for _ in range(2):
        page = client.get(_urls(queue, ReviewSlot(pk=0))["next"], follow=True)
        _commit(client, queue, page.context["view"].slot)
    done = client.get(_urls(queue, ReviewSlot(pk=0))["next"])
    html = done.content.decode()
    assert done.status_code == 200 and "Queue done for you" in html
    assert reverse("annotation:review_mine", args=[project.slug]) in html


# --- adjudication and my work -------------------------------------------------------------


def _review_all(queue, first, second, choose):  # type: ignore[no-untyped-def]
    """Both reviewers decide every pair; ``choose(position, reviewer_index)`` → a / b / tie."""
    for index, user in enumerate((first, second)):
        client = _client(user)
        while (slot := review_services.slot_next(queue=queue, reviewer=user)) is not None:
            winner = choose(slot.item.position, index)
            shown = winner if winner == "tie" else {"a": "A", "b": "B"}[winner]
            if slot.swapped and winner != "tie":
                shown = {"A": "B", "B": "A"}[shown]
            _commit(
                client, queue, slot, shown, rationale=f"{user.username} on {slot.item.position}"
            )


def test_adjudication_settles_disagreements_into_expert_labels(
    project, owner, rubric, keys, reviewer, editor
):  # type: ignore[no-untyped-def]
    queue = _queue(project, owner, rubric, keys, n=4, overlap=2)
    other = _reviewer(project, "second-reviewer")
    _review_all(queue, reviewer, other, lambda pos, who: "a" if who == 0 or pos < 2 else "b")
    agreed = queue.items.filter(position__lt=2)
    assert {(i.final, i.final_source) for i in agreed} == {("a", "consensus")}
    assert all(i.label.source == "expert" and i.label.chosen_id == i.response_a_id for i in agreed)
    client = _client(editor)
    url = reverse("annotation:review_adjudicate", args=[project.slug, queue.pk])
    html = client.get(url).content.decode()
    for position in (2, 3):
        assert f"Pair {position + 1}</h2>" in html
        assert f"<td>second-reviewer on {position}</td>" in html
        assert f"<td>reviewer on {position}</td>" in html
    assert "Pair 1</h2>" not in html and "Pair 2</h2>" not in html
    assert "<td>second-reviewer</td>" in html and "<td>reviewer</td>" in html
    assert SENTINEL in html  # the judge's explanations, for the adjudicator
    # Each decision in its reviewer's own letters: the rationale speaks of what they saw.
    decisions = list(PairwiseReview.objects.filter(item__queue=queue, item__position__gte=2))
    page = re.sub(r"\s+", " ", html)
    assert {r.shown_swapped for r in decisions} == {True, False}  # the seed shows both ways
    for review in decisions:
        saw = "b as A, a as B" if review.shown_swapped else "a as A, b as B"
        letter = {"a": "A", "b": "B"}[review.winner]
        if review.shown_swapped:
            letter = {"A": "B", "B": "A"}[letter]
        assert (
            f'(chose “{letter} is better”)</span></td> <td class="small" title="The reviewer\'s'
            f' rationale calls the responses by these letters">{saw}</td>'
        ) in page
    assert "<kbd>1</kbd> Response a" in html and "js/adjudicate.js" in html  # the review keys
    item = queue.items.get(position=2)
    bad = client.post(url, {"item": item.pk, "winner": "x"}, **HX)
    assert "The final label is a, b or tie." in bad.content.decode()
    item.refresh_from_db()
    assert item.final == ""
    answer = client.post(url, {"item": item.pk, "winner": "b"}, **HX)
    assert "final label Response b, adjudicated by editor" in answer.content.decode()
    item.refresh_from_db()
    assert (item.final, item.final_source, item.final_by) == ("b", "adjudicated", editor)
    assert (item.label.source, item.label.chosen_id) == ("expert", item.response_b_id)
    plain = client.post(url, {"item": queue.items.get(position=3).pk, "winner": "tie"}, follow=True)
    assert "Pair 4: final label set." in plain.content.decode()
    assert "No pair waits for adjudication" in plain.content.decode()
    assert client.post(url, {"item": "999999", "winner": "a"}).status_code == 404

    mine = _client(other).get(reverse("annotation:review_mine", args=[project.slug]))
    row = re.sub(r"\s+", " ", mine.content.decode())
    # The second reviewer: agreed on pairs 1–2, matched the adjudicated b on pair 3, not the tie.
    assert "75%" in row and "3 of 4 settled pairs" in row


def test_item_page_query_count_is_bounded(queue, reviewer, django_assert_max_num_queries):  # type: ignore[no-untyped-def]
    client = _client(reviewer)
    slot = review_services.slot_next(queue=queue, reviewer=reviewer)
    url = _urls(queue, slot)["item"]
    client.get(url)
    with django_assert_max_num_queries(12):
        client.get(url)
    _commit(client, queue, slot)
    with django_assert_max_num_queries(12):
        client.get(url)


# --- CSRF ---------------------------------------------------------------------------------


def test_posts_need_the_csrf_token(queue, reviewer):  # type: ignore[no-untyped-def]
    client = _client(reviewer, enforce_csrf_checks=True)
    page = client.get(_urls(queue, ReviewSlot(pk=0))["next"], follow=True)
    slot = page.context["view"].slot
    urls = _urls(queue, slot)
    html = page.content.decode()
    assert 'hx-headers=\'{"X-CSRFToken": "' in html  # htmx sends it with every request
    for name in ("commit", "flag", "undo"):
        assert client.post(urls[name], {"choice": "A"}, **HX).status_code == 403, name
    assert not PairwiseReview.objects.exists()
    header_token = re.search(r'"X-CSRFToken": "([^"]+)"', html).group(1)
    answer = client.post(urls["commit"], {"choice": "A"}, HTTP_X_CSRFTOKEN=header_token, **HX)
    assert answer.status_code == 200
    assert PairwiseReview.objects.filter(slot=slot).exists()


def test_the_reviewer_sees_which_pair_of_how_many_they_are_on(queue, reviewer):  # type: ignore[no-untyped-def]
    """Six pairs, two reviewers each: all six are this reviewer's to decide."""
    client = _client(reviewer)
    html = client.get(_urls(queue, ReviewSlot(pk=0))["next"], follow=True).content.decode()
    assert "pair 1 of 6" in html
    first = ReviewSlot.objects.get(reviewer=reviewer)
    _commit(client, queue, first, "A")
    html = client.get(_urls(queue, ReviewSlot(pk=0))["next"], follow=True).content.decode()
    assert "pair 2 of 6" in html
    # Stepping back to the decided pair names its place among the reviewer's decisions.
    assert "pair 1 of 6" in client.get(_urls(queue, first)["item"]).content.decode()


def test_the_turn_being_answered_stays_in_view_and_earlier_turns_fold(queue, reviewer):  # type: ignore[no-untyped-def]
    from annotation.prompts.models import Prompt

    conversation = [
        {"role": "user", "content": "I have a headache."},
        {"role": "assistant", "content": "How long has it lasted?"},
        {"role": "user", "content": "Three days, and now my neck is stiff."},
    ]
    Prompt.objects.filter(pk__in=queue.items.values("prompt_id")).update(messages=conversation)
    client = _client(reviewer)
    html = client.get(_urls(queue, ReviewSlot(pk=0))["next"], follow=True).content.decode()
    earlier, final = html.split("data-final-turn", 1)
    assert "Earlier turns (2)" in earlier and "How long has it lasted?" in earlier
    assert "Three days, and now my neck is stiff." in final.split("</ol>", 1)[0]


def test_an_imported_pair_is_reviewed_with_its_prompts_approved_rubric(  # type: ignore[no-untyped-def]
    project, owner, editor, reviewer
):
    from annotation.rubrics import workflow

    labels = _labels(project, 2)
    with_rubric = labels[0].prompt
    rubric = rubric_services.rubric_create(
        project=project, prompt=with_rubric, title="r", author=editor,
        criteria=[CriterionInput(text="Names the first-line treatment", points=5)],
    )  # fmt: skip
    workflow.rubric_submit_for_review(rubric=rubric, actor=editor)
    workflow.rubric_review(rubric=rubric, actor=owner, decision="approve")
    queue = queue_services.queue_from_labels(
        project=project, actor=owner, labels=labels, name="Pairs", overlap=1, seed=1
    )
    rubric.refresh_from_db()
    versions = dict(queue.items.values_list("prompt_id", "rubric_version_id"))
    assert versions == {with_rubric.pk: rubric.approved_version_id, labels[1].prompt_id: None}
    client = _client(reviewer)
    seen = client.get(_urls(queue, ReviewSlot(pk=0))["next"], follow=True).content.decode()
    if "Names the first-line treatment" not in seen:  # the other pair came first: decide it
        other = ReviewSlot.objects.get(reviewer=reviewer)
        _commit(client, queue, other, "A")
        seen = client.get(_urls(queue, ReviewSlot(pk=0))["next"], follow=True).content.decode()
    assert "Names the first-line treatment" in seen
