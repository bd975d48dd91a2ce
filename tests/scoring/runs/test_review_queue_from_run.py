"""A review queue made from a pairwise run: one item per pair judged in both orders, with
the judge's merged verdict, per-criterion winners by criterion key, explanations and the
rubric version as the reference; sampling keeps only inconsistent pairs when asked; who may
make one."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotation.errors import ApplicationError
from annotation.reviews.models import ReviewQueue
from annotation.rubrics import services as rubric_services
from annotation.rubrics.services import CriterionInput
from fakellm.config import Rule
from scoring.runs import review_queue
from scoring.runs.models import Run
from scoring.runs.results import run_results
from tests.factories import PromptFactory, ResponseFactory
from tests.scoring.runs.test_runs import endpoint, launch  # noqa: F401 - the fixture

PAIR = r"(?s)RESPONSE A [0-9a-f]{{16}}>>>\n{a}.*RESPONSE B [0-9a-f]{{16}}>>>\n{b}"


def _verdict(winner: str, why: str) -> dict:  # type: ignore[type-arg]
    return {
        "explanation": why,
        "winner": winner,
        "criteria": [{"criterion_id": 1, "winner": winner}],
    }


@pytest.fixture
def pairwise_run(project, editor, endpoint, fake_llm, eager):  # type: ignore[no-untyped-def]  # noqa: F811
    rubric = rubric_services.rubric_create(
        project=project,
        title="t",
        author=editor,
        criteria=[CriterionInput(text="Is right", points=5)],
    )
    prompt = PromptFactory(project=project)
    for source in ("GOOD", "BAD", "FLIP"):
        ResponseFactory(prompt=prompt, source=source.lower(), content=f"{source} ANSWER")
    fake_llm.configure(
        rules=[
            Rule(PAIR.format(a="GOOD", b="BAD"), _verdict("A", "good beats bad"), regex=True),
            Rule(PAIR.format(a="BAD", b="GOOD"), _verdict("B", "good beats bad again"), regex=True),
            Rule(PAIR.format(a="GOOD", b="FLIP"), _verdict("A", "first wins"), regex=True),
            Rule(PAIR.format(a="FLIP", b="GOOD"), _verdict("A", "first wins again"), regex=True),
            Rule("RESPONSE A", _verdict("tie", "same")),
        ]
    )
    run = launch(eager, project, editor, endpoint, mode=Run.Mode.PAIRWISE)
    assert run.status == "done"
    return run, rubric


def test_a_queue_holds_each_pair_with_the_judges_verdict(pairwise_run, editor):  # type: ignore[no-untyped-def]
    run, rubric = pairwise_run
    queue = review_queue.queue_from_run(run=run, actor=editor, overlap=2, seed=5)
    assert (queue.origin, queue.source_run, queue.template_version) == (
        "run",
        run.pk,
        run.template_version,
    )
    items = list(queue.items.select_related("response_a", "response_b"))
    merged = {(p.a.pk, p.b.pk): p for p in run_results(run).pairs}
    assert len(items) == len(merged) == 3
    key = str(rubric.current_version.criteria.get().key)
    for item in items:
        pair = merged[(item.response_a_id, item.response_b_id)]
        judge = item.judge
        assert (judge["winner"], judge["consistent"]) == (pair.winner, pair.consistent)
        assert set(judge["criteria"]) == {key}
        assert [o["order"] for o in judge["orders"]] == ["ab", "ba"]
        assert item.rubric_version_id == rubric.current_version_id
        sources = {item.response_a.source, item.response_b.source}
        if sources == {"good", "bad"}:
            good = "a" if item.response_a.source == "good" else "b"
            assert judge["winner"] == good and judge["criteria"][key] == good
            assert "good beats bad" in judge["orders"][0]["explanation"]
        if sources == {"good", "flip"}:
            assert (judge["winner"], judge["consistent"]) == ("tie", False)
    assert queue.items.get(position=0).slots.count() == 2

    only = review_queue.queue_from_run(run=run, actor=editor, plan="inconsistent", seed=5)
    assert [i.judge["consistent"] for i in only.items.all()] == [False]


def test_only_pairwise_runs_with_judged_pairs(project, editor, endpoint, fake_llm, eager):  # type: ignore[no-untyped-def]  # noqa: F811
    rubric_services.rubric_create(
        project=project, title="t", author=editor, criteria=[CriterionInput(text="x", points=1)]
    )
    ResponseFactory(prompt=PromptFactory(project=project))
    run = launch(eager, project, editor, endpoint, mode=Run.Mode.PER_CRITERION)
    with pytest.raises(ApplicationError, match="made from pairwise runs"):
        review_queue.queue_from_run(run=run, actor=editor)


def test_the_run_page_makes_a_queue_for_editors_only(pairwise_run, project, client, personas):  # type: ignore[no-untyped-def]
    run, _ = pairwise_run
    url = reverse("scoring:run_review_queue", args=[project.slug, run.pk])
    page = reverse("scoring:run", args=[project.slug, run.pk])
    client.force_login(personas["reviewer"])
    shown = client.get(page).content.decode()
    assert "Review these judgments" not in shown
    # Reviewers stay blind: no per-pair verdict on the run page.
    assert "Per-pair verdicts are shown to editors and owners only" in shown
    assert "<th>Consistent</th>" not in shown
    client.force_login(personas["viewer"])
    assert client.post(url, {"plan": "all"}).status_code in (403, 404)
    client.force_login(personas["outsider"])
    assert client.post(url, {"plan": "all"}).status_code == 404
    assert not ReviewQueue.objects.exists()
    client.force_login(personas["editor"])
    assert "Review these judgments" in client.get(page).content.decode()
    bad = client.post(url, {"plan": "random", "sample_size": "x"}, follow=True)
    assert "k must be a whole number." in bad.content.decode()
    assert not ReviewQueue.objects.exists()
    response = client.post(
        url, {"plan": "random", "sample_size": "2", "overlap": "3", "name": "Spot check"}
    )
    assert response.status_code == 302
    queue = ReviewQueue.objects.get()
    assert (queue.name, queue.overlap, queue.items.count()) == ("Spot check", 3, 2)
