"""Two reviewers review a queue of 20 pairs (overlap 2) in headless Chromium with the
keyboard only, taking turns. Before each commit the judge's verdict and explanation are not
in the page's HTML at all; after it they are. Agreements become final labels, disagreements
wait on the adjudication page. Screenshots go to var/screenshots/."""

from __future__ import annotations

import re

import pytest

from annotation.projects import services as project_services
from annotation.reviews import queues as queue_services
from annotation.reviews.models import PairwiseReview, ReviewItem
from annotation.reviews.queues import ItemInput
from annotation.rubrics import services as rubric_services
from annotation.rubrics.services import CriterionInput
from tests.browser.conftest import SHOTS, login
from tests.factories import MembershipFactory, PromptFactory, ResponseFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

N = 20
SENTINEL = "JUDGE-EXPLANATION-SENTINEL"
VERDICT_MARKUP = ('id="judge-verdict"', 'class="judge-mark"')


def _explanation(i: int) -> str:
    return f"{SENTINEL}-{i:02d}: the dosing advice decides it"


def _make_queue():  # type: ignore[no-untyped-def]
    lead = UserFactory(username="lead")
    project = project_services.project_create(name="Dosing", slug="dosing", owner=lead)
    for name in ("ana", "ben"):
        MembershipFactory(project=project, user=UserFactory(username=name), role="reviewer")
    rubric = rubric_services.rubric_create(
        project=project,
        title="Dosing answers",
        author=lead,
        criteria=[
            CriterionInput(text="Gives the adult dose with units", points=5, category="essential"),
            CriterionInput(text="Warns about liver damage above the daily maximum", points=4),
            CriterionInput(text="Recommends doubling the dose", points=-5, category="pitfall"),
        ],
    )
    keys = [str(c.key) for c in rubric.current_version.criteria.order_by("position")]
    items = []
    for i in range(N):
        prompt = PromptFactory(
            project=project,
            external_id=f"dose-{i:02d}",
            messages=[
                {"role": "system", "content": "You are a careful pharmacist."},
                {"role": "user", "content": f"Case {i}: how much paracetamol can an adult take?"},
            ],
        )
        a = ResponseFactory(
            prompt=prompt,
            source="model-x",
            content=f"Pair {i:02d} answer alpha. Up to 1 g every 4–6 hours, at most 4 g a day; "
            "less with liver disease or heavy drinking.",
        )
        b = ResponseFactory(
            prompt=prompt,
            source="model-y",
            content=f"Pair {i:02d} answer beta. Take two tablets when needed.",
        )
        winner = "a" if i % 3 else "b"
        judge = {
            "winner": winner,
            "consistent": True,
            "orders": [
                {"order": "ab", "winner": winner.upper(), "explanation": _explanation(i)},
                {"order": "ba", "winner": "B" if winner == "a" else "A", "explanation": _explanation(i)},
            ],
            "criteria": {keys[0]: winner, keys[1]: "a", keys[2]: "tie"},
        }  # fmt: skip
        items.append(ItemInput(prompt.pk, a.pk, b.pk, judge, rubric.current_version_id))
    queue = queue_services.review_queue_create(
        project=project, actor=lead, name="Dosing pairs", origin="run", items=items, overlap=2,
        seed=5, judge_name="judge-1",
    )  # fmt: skip
    return project, queue


def _choice(who: str, i: int) -> str:
    """ana prefers alpha (a) everywhere; ben agrees on even pairs and not on odd ones."""
    if who == "ana" or i % 2 == 0:
        return "a"
    return "b" if i % 4 == 1 else "tie"


def _assert_blind(page) -> None:  # type: ignore[no-untyped-def]
    html = page.content()
    assert SENTINEL not in html
    for markup in VERDICT_MARKUP:
        assert markup not in html


def _decide(page, who: str, *, shot: str = "", rationale: str = "") -> int:  # type: ignore[no-untyped-def]
    """Decide the pair on screen from the keyboard; returns its number."""
    page.wait_for_selector("#decision")
    _assert_blind(page)
    left = page.inner_text("#side-a .text")
    i = int(re.search(r"Pair (\d+)", left).group(1))
    winner = _choice(who, i)
    a_on_left = "alpha" in left
    key = "3" if winner == "tie" else ("1" if (winner == "a") == a_on_left else "2")
    page.keyboard.press(key)
    if rationale:
        page.keyboard.press("r")
        page.keyboard.type(rationale)
    if shot:
        page.screenshot(path=str(SHOTS / shot), full_page=True)
    _assert_blind(page)
    page.keyboard.press("Control+Enter" if rationale else "Enter")
    page.wait_for_selector("#judge-verdict")
    html = page.content()
    assert _explanation(i) in html
    assert all(markup in html for markup in VERDICT_MARKUP)
    return i


def _next(page) -> None:  # type: ignore[no-untyped-def]
    with page.expect_navigation():
        page.keyboard.press("n")


def test_two_reviewers_review_twenty_pairs_with_the_keyboard(browser, live_server, page):  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    project, queue = _make_queue()
    start = f"{live_server.url}/p/{project.slug}/reviews/{queue.pk}/review/"
    pages = {"ana": page}
    other = browser.new_context(viewport={"width": 1440, "height": 900})
    pages["ben"] = other.new_page()
    for who, p in pages.items():
        login(p, live_server, who)
        p.goto(start)

    ana, ben = pages["ana"], pages["ben"]
    # The keys dialog, and Enter before choosing: nothing is committed.
    ana.keyboard.press("?")
    assert ana.is_visible("#review-keys")
    ana.keyboard.press("Escape")
    assert not ana.is_visible("#review-keys")
    ana.wait_for_selector("#review-keys", state="hidden")
    ana.keyboard.press("Enter")
    ana.wait_for_function(
        "document.querySelector('#review-hint').innerText.includes('Choose A, B or tie first')"
    )
    assert not PairwiseReview.objects.exists()
    _assert_blind(ana)

    decided: dict[str, list[int]] = {"ana": [], "ben": []}
    for turn in range(N):
        for who, p in pages.items():
            shot = "review-before-commit.png" if (who, turn) == ("ana", 0) else ""
            rationale = "Alpha gives the daily maximum." if (who, turn) == ("ana", 2) else ""
            decided[who].append(_decide(p, who, shot=shot, rationale=rationale))
            if (who, turn) == ("ana", 0):
                p.screenshot(path=str(SHOTS / "review-after-reveal.png"), full_page=True)
            if (who, turn) == ("ana", 4):
                # k: the previous decision, read only with its reveal; j: back again.
                with p.expect_navigation():
                    p.keyboard.press("k")
                assert _explanation(decided[who][-2]) in p.content()
                assert p.query_selector("#decision") is None
                with p.expect_navigation():
                    p.keyboard.press("j")
                assert _explanation(decided[who][-1]) in p.content()
                # u: take the last decision back; the pair is blind again until recommitted.
                with p.expect_navigation():
                    p.keyboard.press("u")
                assert _decide(p, who) == decided[who][-1]
            _next(p)

    for p in pages.values():
        assert "Queue done for you" in p.inner_text("main")
    ben.screenshot(path=str(SHOTS / "review-queue-done.png"))
    assert sorted(decided["ana"]) == sorted(decided["ben"]) == list(range(N))

    reviews = PairwiseReview.objects.filter(item__queue=queue)
    assert reviews.count() == 2 * N
    assert reviews.filter(reviewer__username="ana").count() == N
    written = reviews.get(reviewer__username="ana", item__position=decided["ana"][2])
    assert written.rationale == "Alpha gives the daily maximum."
    assert all(0 < r.seconds < 600 for r in reviews)  # measured by the page
    assert reviews.filter(saw_judge_before_commit=True).count() == 1  # the undone one
    for item in ReviewItem.objects.filter(queue=queue):
        mine = {r.reviewer.username: r.winner for r in item.reviews.all()}
        assert mine == {"ana": "a", "ben": _choice("ben", item.position)}
        if item.position % 2 == 0:
            assert (item.final, item.final_source) == ("a", "consensus")
            assert item.label.chosen_id == item.response_a_id
        else:
            assert item.final == "" and item.label is None

    # The adjudicator sees the ten disagreements, each with both reviewers' decisions.
    lead = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    login(lead, live_server, "lead")
    lead.goto(f"{live_server.url}/p/{project.slug}/reviews/{queue.pk}/adjudicate/")
    cards = lead.query_selector_all("article.adjudicate-item")
    assert len(cards) == N // 2
    assert [c.query_selector("h2").inner_text() for c in cards] == [
        f"Pair {i + 1}" for i in range(1, N, 2)
    ]
    for card in cards:
        reviewers = [cell.inner_text() for cell in card.query_selector_all("tbody td:first-child")]
        assert sorted(reviewers) == ["ana", "ben"]
    lead.screenshot(path=str(SHOTS / "review-adjudication.png"))
    # The review keys settle pairs: 2 chooses response b on the pair in focus, Enter sets
    # it, focus goes to the next open pair; k goes back, 3 and Enter make a tie.
    first, second = cards[0].get_attribute("id"), cards[1].get_attribute("id")
    lead.wait_for_function(f"document.activeElement.id === '{first}'")
    lead.keyboard.press("2")
    lead.keyboard.press("Enter")
    lead.wait_for_selector(f"#{first}[data-settled]")
    lead.wait_for_function(f"document.activeElement.id === '{second}'")
    lead.keyboard.press("3")
    lead.keyboard.press("Enter")
    lead.wait_for_selector(f"#{second}[data-settled]")
    settled = ReviewItem.objects.filter(queue=queue, position__in=(1, 3)).order_by("position")
    assert [(i.final, i.final_source) for i in settled] == [
        ("b", "adjudicated"),
        ("tie", "adjudicated"),
    ]
    assert settled[0].label.chosen_id == settled[0].response_b_id and settled[1].label is None
    lead.goto(f"{live_server.url}/p/{project.slug}/reviews/")
    row = lead.inner_text("table.review-queues tbody tr")
    assert "Dosing pairs" in row and "40 / 40" in row
    lead.screenshot(path=str(SHOTS / "review-queues.png"))

    ana.goto(f"{live_server.url}/p/{project.slug}/reviews/mine/")
    row = ana.inner_text("table.my-work tbody tr")
    # ana agreed with the ten consensus labels, not with the two adjudicated b and tie.
    assert "Dosing pairs" in row and "83%" in row and "10 of 12 settled pairs" in row
    ana.screenshot(path=str(SHOTS / "review-my-work.png"), full_page=True)
    other.close()
