"""A finished run's analytics, computed by the worker when the run finishes and stored: the
criterion figures and flags on a rubric built to have a saturated, a redundant and a
label-consistent criterion; the rubric's signal-to-noise ratio and tail accuracy; the
leaderboards beside the mean scores; the judge's biases."""

from __future__ import annotations

import pytest

from annotation.prompts.models import PreferenceLabel
from annotation.rubrics import services as rubric_services
from annotation.rubrics.services import CriterionInput
from scoring.insights.models import RunInsights
from scoring.insights.services import insights_compute
from scoring.runs import services as run_services
from scoring.runs.models import Run
from tests.factories import PromptFactory, ResponseFactory

CRITERIA = [
    ("Advises calling emergency services", 8),
    ("Advises calling emergency services promptly", 4),
    ("Mentions aspirin", 3),
    ("Recommends rest only", -5),
]


@pytest.fixture
def world(project, editor):  # type: ignore[no-untyped-def]
    rubric_services.rubric_create(
        project=project, title="Chest pain", author=editor,
        criteria=[CriterionInput(text=t, points=p) for t, p in CRITERIA],
    )  # fmt: skip
    for i in range(12):
        prompt = PromptFactory(project=project, external_id=f"case-{i}")
        aspirin = " and chew an aspirin" if i % 2 == 0 else ""  # half of the careful answers
        good = ResponseFactory(
            prompt=prompt, source="careful", content=f"Call emergency services now ({i}){aspirin}."
        )  # fmt: skip
        poor = ResponseFactory(
            prompt=prompt, source="casual", content=f"Drink water and lie down ({i})."
        )
        PreferenceLabel.objects.create(prompt=prompt, chosen=good, rejected=poor)
    return project


def _run(eager, project, editor, judge, **options):  # type: ignore[no-untyped-def]
    run = eager(
        lambda: run_services.run_create(project=project, actor=editor, endpoint=judge, **options)
    )
    return Run.objects.get(pk=run.pk)


def test_a_finished_run_has_its_analytics_stored_by_the_worker(world, editor, judge, eager):
    run = _run(eager, world, editor, judge, mode=Run.Mode.PER_CRITERION, samples=2)
    assert run.status == "done"
    stored = RunInsights.objects.get(run=run)  # computed when the run finished
    assert stored.error == "" and stored.seconds > 0
    figures = stored.figures
    by_text = {c["text"]: c for c in figures["criteria"]}
    assert set(by_text) == {t for t, _ in CRITERIA} and figures["responses"] == 24

    emergency = by_text["Advises calling emergency services"]
    assert emergency["hit_rate"] == {"value": 0.5, "n": 48, "why": ""}
    assert emergency["by_source"]["careful"]["value"] == 1.0
    assert emergency["by_source"]["casual"]["value"] == 0.0
    assert emergency["discrimination"]["value"] > 0.9 and emergency["discrimination"]["n"] == 48
    assert emergency["label_agreement"] == {"value": 1.0, "n": 12, "why": ""}
    assert (
        emergency["noise"]["flips"]["value"] == 0.0 and emergency["noise"]["kappa"]["value"] == 1.0
    )
    assert [f["kind"] for f in emergency["flags"]] == ["redundant"]

    aspirin = by_text["Mentions aspirin"]
    assert aspirin["hit_rate"]["value"] == 0.25 and aspirin["label_agreement"]["n"] == 6
    assert aspirin["flags"] == []

    rest = by_text["Recommends rest only"]
    assert rest["saturated"] and rest["hit_rate"]["value"] == 0.0
    assert (
        rest["discrimination"]["value"] is None
        and "one class only" in rest["discrimination"]["why"]
    )
    assert rest["label_agreement"]["why"] == "its verdicts never differ on a labelled pair"
    assert [f["kind"] for f in rest["flags"]] == ["saturated"]

    (pair,) = figures["redundant"]
    assert {pair["a_text"], pair["b_text"]} == {CRITERIA[0][0], CRITERIA[1][0]}
    assert (
        pair["agreement"] == 1.0 and pair["n"] == 24 and pair["phi"]["value"] == pytest.approx(1.0)
    )

    snr = figures["snr"]
    assert snr["noise_from"] == "samples" and snr["means"]["careful"] == pytest.approx(0.9)
    assert snr["signal"]["value"] == pytest.approx(2.0)  # (0.9 − 0) / 0.45
    assert snr["snr"]["value"] is None and "every measurement equal" in snr["snr"]["why"]
    assert figures["tail"]["all"] == {"value": 1.0, "n": 12, "why": ""}
    assert figures["tail"]["0.10"]["value"] is None  # the top 10 % holds no labelled pair

    labels = figures["leaderboard"]["labels"]
    assert [row["source"] for row in labels["board"]] == ["careful", "casual"]
    assert labels["board"][0]["comparisons"] == 12 and labels["tau"]["value"] == 1.0
    assert figures["leaderboard"]["pairwise"] is None
    bias = figures["bias"]
    assert bias["length_score"]["value"] is not None and bias["position"] is None
    assert bias["longer_wins_labels"]["value"] == 1.0  # the chosen answers are the longer ones
    assert "no pairwise run" in bias["longer_wins_judge"]["why"]


def test_a_pairwise_run_feeds_the_leaderboard_and_the_position_figures(world, editor, judge, eager):
    pairwise = _run(eager, world, editor, judge, mode=Run.Mode.PAIRWISE)
    figures = RunInsights.objects.get(run=pairwise).figures
    assert figures["criteria"] == [] and "compares pairs" in figures["criteria_why"]
    board = figures["leaderboard"]["pairwise"]
    assert board["run"] == pairwise.pk and {r["source"] for r in board["board"]} == {
        "careful",
        "casual",
    }
    assert all(r["comparisons"] == 12 for r in board["board"])
    assert figures["bias"]["position"]["pairs"] == 12
    assert figures["bias"]["position"]["consistent"]["value"] is not None

    graded = _run(eager, world, editor, judge, mode=Run.Mode.PER_CRITERION)
    later = RunInsights.objects.get(run=graded).figures
    assert later["leaderboard"]["pairwise"]["run"] == pairwise.pk  # the project's latest
    assert later["bias"]["position"]["run"] == pairwise.pk


def test_a_run_not_finished_is_left_alone(world, editor, judge):
    run = run_services.run_create(
        project=world, actor=editor, endpoint=judge, mode=Run.Mode.PER_CRITERION
    )
    assert insights_compute(run_id=run.pk) is None and not RunInsights.objects.exists()
    assert insights_compute(run_id=999999) is None


def test_figures_follow_a_pairwise_run_and_a_settled_review_queue(
    world, editor, reviewer, judge, eager
):
    from annotation.reviews import queues as queue_services
    from annotation.reviews import services as review_services

    graded = _run(eager, world, editor, judge, mode=Run.Mode.PER_CRITERION)
    assert RunInsights.objects.get(run=graded).figures["leaderboard"]["pairwise"] is None
    pairwise = _run(eager, world, editor, judge, mode=Run.Mode.PAIRWISE)
    figures = RunInsights.objects.get(run=graded).figures  # computed again
    assert figures["leaderboard"]["pairwise"]["run"] == pairwise.pk and figures["labels"] == 12

    labels = list(PreferenceLabel.objects.filter(prompt__project=world))
    queue = queue_services.queue_from_labels(
        project=world, actor=editor, labels=labels, overlap=1, name="q"
    )

    def review_all() -> None:
        while (slot := review_services.slot_next(queue=queue, reviewer=reviewer)) is not None:
            review_services.review_commit(slot=slot, reviewer=reviewer, shown="A")

    eager(review_all)
    assert (
        RunInsights.objects.get(run=graded).figures["labels"]
        == 12 + PreferenceLabel.objects.filter(source="expert").count()
    )
    assert PreferenceLabel.objects.filter(source="expert").exists()


def test_a_second_judge_measures_judge_noise_and_stored_embeddings_give_the_text_cosine(
    world, owner, editor, judge, eager
):
    from scoring.judges import services as judge_services
    from tests.factories import EmbeddingFactory

    first = _run(eager, world, editor, judge, mode=Run.Mode.PER_CRITERION)
    figures = RunInsights.objects.get(run=first).figures
    assert figures["second_judge"] is None
    emergency = next(c for c in figures["criteria"] if c["text"] == CRITERIA[0][0])
    assert (
        emergency["noise"]["judges_flips"]["why"] == "no other judge's run graded these responses"
    )
    (pair,) = figures["redundant"]
    assert "not embedded yet" in pair["cosine"]["why"]

    other = judge_services.endpoint_save(
        project=world, actor=owner,
        data={"name": "second", "base_url": judge.base_url, "model": "fake-judge-2"},
    )  # fmt: skip
    EmbeddingFactory(text=CRITERIA[0][0], values=(0.6, 0.8, 0.0, 0.0))
    EmbeddingFactory(text=CRITERIA[1][0], values=(0.8, 0.6, 0.0, 0.0))
    second = _run(eager, world, editor, other, mode=Run.Mode.PER_CRITERION)
    figures = RunInsights.objects.get(run=second).figures
    assert figures["second_judge"] == {"run": first.pk, "model": "fake-judge"}
    emergency = next(c for c in figures["criteria"] if c["text"] == CRITERIA[0][0])
    assert emergency["noise"]["judges_flips"] == {"value": 0.0, "n": 24, "why": ""}
    assert emergency["noise"]["judges_kappa"]["value"] == 1.0
    (pair,) = figures["redundant"]
    assert pair["cosine"]["value"] == pytest.approx(0.96)  # 0.6·0.8 + 0.8·0.6
