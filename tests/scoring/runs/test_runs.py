"""Scoring runs against the fake judge: HealthBench scores equal an independent computation,
a re-run after editing one criterion judges only that criterion, faults end as valid
judgments or recorded failures that "retry failed" completes, pairwise runs merge both
orders, budgets pause, and who may do what."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse

from annotation.prompts import services as prompt_services
from annotation.rubrics import services as rubric_services
from annotation.rubrics import workflow as rubric_workflow
from annotation.rubrics.models import Rubric
from annotation.rubrics.services import CriterionInput
from fakellm.config import Rule
from scoring.judges import services as judge_services
from scoring.runs import selectors as run_selectors
from scoring.runs import services as run_services
from scoring.runs.models import Judgment, Run, RunJudgment
from scoring.runs.modes.per_criterion import PerCriterionMode
from scoring.runs.results import run_results
from tests.factories import PromptFactory, ResponseFactory

MET_IF_A_TO_M = [
    Rule(
        r"<<<CRITERION [0-9a-f]{16}>>>\n\[[^\]]*\] [A-M]",
        {"explanation": "It does.", "criteria_met": True},
        regex=True,
    ),
    Rule("<<<CRITERION", {"explanation": "It does not.", "criteria_met": False}),
]


def met_by_script(text: str) -> bool:
    return text.strip()[:1] in "ABCDEFGHIJKLM"


@pytest.fixture
def endpoint(project, owner, fake_llm):  # type: ignore[no-untyped-def]
    return judge_services.endpoint_save(
        project=project,
        actor=owner,
        data={
            "name": "judge",
            "base_url": fake_llm.url + "/v1",
            "model": "fake-judge",
            "max_concurrency": 16,
            "timeout": 5,
            "price_input_per_m": 1.0,
            "price_output_per_m": 4.0,
        },
    )


def launch(eager, project, editor, endpoint, **options):  # type: ignore[no-untyped-def]
    run = eager(
        lambda: run_services.run_create(project=project, actor=editor, endpoint=endpoint, **options)
    )
    run.refresh_from_db()
    return run


def test_healthbench_scores_equal_an_independent_computation(
    project, editor, endpoint, fake_llm, eager, healthbench_path
):
    prompt_services.data_import(project=project, path=healthbench_path)
    for prompt in project.prompts.all():
        ResponseFactory(prompt=prompt, source="model-x", content=f"Answer to {prompt.external_id}")
    fake_llm.configure(rules=MET_IF_A_TO_M)
    run = launch(eager, project, editor, endpoint, mode=Run.Mode.PER_CRITERION)
    assert (run.status, run.failed, run.done, run.total) == ("done", 0, 2955, 2955)

    expected: dict[str, float] = {}
    with healthbench_path.open() as lines:
        for line in lines:
            record = json.loads(line)
            points = [item["points"] for item in record["rubrics"]]
            met = [met_by_script(item["criterion"]) for item in record["rubrics"]]
            positive = sum(p for p in points if p > 0)
            expected[record["prompt_id"]] = (
                sum(p for p, m in zip(points, met, strict=False) if m) / positive
            )
    results = run_results(run)
    got = {r.response.prompt.external_id: r.score for r in results.responses}
    assert got.keys() == expected.keys()
    assert all(got[k] == pytest.approx(v, abs=1e-12) for k, v in expected.items())
    mean = min(max(sum(expected.values()) / len(expected), 0.0), 1.0)
    (source,) = results.sources
    assert source.mean == pytest.approx(mean, abs=1e-12) and source.se > 0
    assert fake_llm.stats()["requests"] == 2955
    assert run.cached_tokens > 0  # all criteria of a response share the instructions prefix


def make_rubric_project(project, editor, n_prompts=10, n_responses=10, n_criteria=10):  # type: ignore[no-untyped-def]
    """A project-wide rubric of ``n_criteria`` applying to ``n_prompts × n_responses``."""
    rubric = rubric_services.rubric_create(
        project=project,
        title="Every answer",
        author=editor,
        criteria=[
            CriterionInput(text=f"Criterion {i}: covers topic {i}", points=i % 5 + 1)
            for i in range(n_criteria)
        ],
    )
    for p in range(n_prompts):
        prompt = PromptFactory(project=project)
        for r in range(n_responses):
            ResponseFactory(prompt=prompt, source=f"model-{r % 2}", content=f"Answer {p}/{r}")
    return rubric


def test_a_rerun_after_editing_one_criterion_calls_the_judge_only_for_it(
    project, editor, endpoint, fake_llm, eager
):
    rubric = make_rubric_project(project, editor)
    first = launch(eager, project, editor, endpoint, mode=Run.Mode.PER_CRITERION)
    assert (first.done, first.reused, fake_llm.stats()["requests"]) == (1000, 0, 1000)
    keys = [c.key for c in rubric.current_version.criteria.order_by("position")]
    criteria = [
        CriterionInput(text=c.text + (" precisely" if i == 3 else ""), points=c.points, key=c.key)
        for i, c in enumerate(rubric.current_version.criteria.order_by("position"))
    ]
    rubric_services.rubric_version_create(rubric=rubric, criteria=criteria, author=editor)
    fake_llm.reset()
    second = launch(eager, project, editor, endpoint, mode=Run.Mode.PER_CRITERION)
    assert fake_llm.stats()["requests"] == 100  # exactly the edited criterion × 100 responses
    assert (second.done, second.reused, second.total) == (1000, 900, 1000)
    fresh = Judgment.objects.filter(created_by_run=second)
    assert fresh.count() == 100 and set(fresh.values_list("criterion_key", flat=True)) == {keys[3]}
    html_rows = run_results(second).responses
    assert all(r.reused == 9 for r in html_rows)


def test_faults_end_as_judgments_or_recorded_failures_and_retry_completes(
    project, editor, endpoint, fake_llm, eager
):
    make_rubric_project(project, editor, n_prompts=5, n_responses=4, n_criteria=10)
    fake_llm.configure(
        rate_429=0.05, rate_500=0.05, rate_timeout=0.05, rate_malformed=0.3, seed=3,
        retry_after=0.01, hang_seconds=1.0,
    )  # fmt: skip
    from scoring.judges.models import JudgeEndpoint

    JudgeEndpoint.objects.filter(pk=endpoint.pk).update(timeout=0.5)
    run = launch(eager, project, editor, endpoint, mode=Run.Mode.PER_CRITERION)
    judgments = Judgment.objects.filter(
        pk__in=RunJudgment.objects.filter(run=run).values("judgment")
    )
    assert judgments.count() == run.total == 200
    failed = judgments.exclude(error="")
    assert failed.exists(), "the faults should have failed some judgments"
    assert all(
        j.met is None
        and j.error.startswith(("malformed", "server_error", "timeout", "rate_limited"))
        for j in failed
    )
    assert not judgments.filter(error="", met__isnull=True).exists()  # never a silent verdict
    assert (run.done + run.failed, run.status) == (200, "done")
    scores = run_results(run).responses
    assert any(r.score is None for r in scores)  # a failure leaves the score undefined
    fake_llm.configure(rate_429=0, rate_500=0, rate_timeout=0, rate_malformed=0)
    eager(lambda: run_services.run_retry_failed(run=run, actor=editor))
    run.refresh_from_db()
    assert (run.status, run.done, run.failed, run.total) == ("done", 200, 0, 200)
    assert all(r.score is not None for r in run_results(run).responses)


def test_grouped_and_holistic_runs(project, editor, endpoint, fake_llm, eager):
    make_rubric_project(project, editor, n_prompts=2, n_responses=3, n_criteria=4)
    verdicts = [
        {"criterion_id": i, "explanation": "ok", "criteria_met": i % 2 == 0} for i in range(1, 5)
    ]
    fake_llm.configure(rules=[Rule("exactly one verdict per criterion", {"verdicts": verdicts})])
    grouped = launch(eager, project, editor, endpoint, mode=Run.Mode.GROUPED)
    assert (grouped.status, grouped.done, grouped.total, grouped.calls) == ("done", 24, 24, 6)
    holistic = launch(eager, project, editor, endpoint, mode=Run.Mode.HOLISTIC)
    assert (holistic.status, holistic.done, holistic.total) == ("done", 6, 6)
    scores = [r.score for r in run_results(holistic).responses]
    assert all(s is not None and 0 <= s <= 1 for s in scores)


def test_pairwise_runs_judge_both_orders_and_flag_inconsistency(
    project, editor, endpoint, fake_llm, eager
):
    rubric_services.rubric_create(
        project=project,
        title="t",
        author=editor,
        criteria=[CriterionInput(text="Is right", points=5)],
    )
    prompt = PromptFactory(project=project)
    good = ResponseFactory(prompt=prompt, source="good", content="GOOD ANSWER")
    ResponseFactory(prompt=prompt, source="bad", content="BAD ANSWER")
    flip = ResponseFactory(prompt=prompt, source="flip", content="FLIP ANSWER")

    def verdict(w):
        return {
            "explanation": "x",
            "winner": w,
            "criteria": [{"criterion_id": 1, "winner": w}],
        }  # noqa: E731

    fake_llm.configure(
        rules=[
            # GOOD always wins; FLIP against GOOD is judged "A" whatever the order.
            Rule(
                r"(?s)RESPONSE A [0-9a-f]{16}>>>\nGOOD.*RESPONSE B [0-9a-f]{16}>>>\nBAD",
                verdict("A"),
                regex=True,
            ),
            Rule(
                r"(?s)RESPONSE A [0-9a-f]{16}>>>\nBAD.*RESPONSE B [0-9a-f]{16}>>>\nGOOD",
                verdict("B"),
                regex=True,
            ),
            Rule(
                r"(?s)RESPONSE A [0-9a-f]{16}>>>\nGOOD.*RESPONSE B [0-9a-f]{16}>>>\nFLIP",
                verdict("A"),
                regex=True,
            ),
            Rule(
                r"(?s)RESPONSE A [0-9a-f]{16}>>>\nFLIP.*RESPONSE B [0-9a-f]{16}>>>\nGOOD",
                verdict("A"),
                regex=True,
            ),
            Rule("RESPONSE A", verdict("tie")),
        ]
    )
    run = launch(eager, project, editor, endpoint, mode=Run.Mode.PAIRWISE)
    assert (run.status, run.total, run.done) == ("done", 6, 6)  # 3 pairs × 2 orders
    pairs = {frozenset((p.a.source, p.b.source)): p for p in run_results(run).pairs}
    good_bad = pairs[frozenset(("good", "bad"))]
    assert (good_bad.consistent, {good_bad.a.pk: "a", good_bad.b.pk: "b"}[good.pk]) == (
        True,
        good_bad.winner,
    )
    good_flip = pairs[frozenset(("good", "flip"))]
    assert (good_flip.winner, good_flip.consistent) == ("tie", False)
    assert flip.pk in (good_flip.a.pk, good_flip.b.pk)
    assert run_results(run).position.inconsistent == 1


def test_a_budget_pauses_the_run_and_a_raised_budget_resumes_it(
    project, editor, endpoint, fake_llm, eager, settings, monkeypatch
):
    make_rubric_project(project, editor, n_prompts=10, n_responses=10, n_criteria=10)
    monkeypatch.setattr(PerCriterionMode, "chunk_size", 100)
    run = launch(eager, project, editor, endpoint, mode=Run.Mode.PER_CRITERION, budget=1e-5)
    assert run.status == "paused" and "budget" in run.note and run.paused_at is not None
    assert 0 < run.done < 1000 and run.cost >= 1e-5
    with pytest.raises(Exception, match="raise the budget"):
        run_services.run_resume(run=run, actor=editor)
    eager(lambda: run_services.run_resume(run=run, actor=editor, budget=1.0))
    run.refresh_from_db()
    assert (run.status, run.done, run.paused_at) == ("done", 1000, None)


def test_run_pages_preview_launch_and_roles(
    client, project, editor, viewer, outsider, endpoint, fake_llm, eager
):
    make_rubric_project(project, editor, n_prompts=2, n_responses=2, n_criteria=3)
    url = reverse("scoring:runs", args=[project.slug])
    client.force_login(editor)
    html = client.post(url, {"mode": "per_criterion", "preview": "1"}).content.decode()
    assert "Before you launch" in html and "Launch 12 judgments" in html
    response = eager(lambda: client.post(url, {"mode": "per_criterion", "launch": "1"}))
    run = Run.objects.get()
    assert response.url == reverse("scoring:run", args=[project.slug, run.pk])
    page = client.get(response.url).content.decode()
    assert "Scores by source" in page and "score-chart" in page and "12 done" in page
    detail = client.get(
        reverse(
            "scoring:run_response",
            args=[project.slug, run.pk, run_results(run).responses[0].response.pk],
        )
    ).content.decode()
    assert "Criterion 0" in detail and ("met" in detail)
    client.force_login(viewer)
    assert client.get(response.url).status_code == 200
    assert client.post(url, {"mode": "per_criterion", "launch": "1"}).status_code == 403
    control = reverse("scoring:run_control", args=[project.slug, run.pk])
    assert client.post(control, {"action": "cancel"}).status_code == 403
    client.force_login(outsider)
    assert client.get(response.url).status_code == 404
    assert client.get(url).status_code == 404
    bad = client.post(url, {"mode": "per_criterion", "samples": "many", "preview": "1"})
    assert bad.status_code == 404
    client.force_login(editor)
    html = client.post(
        url, {"mode": "per_criterion", "samples": "many", "preview": "1"}
    ).content.decode()
    assert "samples must be a number" in html


def test_score_command_dry_run_prints_the_preview(project, editor, endpoint, capsys):
    make_rubric_project(project, editor, n_prompts=2, n_responses=2, n_criteria=3)
    call_command(
        "score", project=project.slug, judge="judge", mode="per_criterion", dry_run=True, json=True
    )
    preview = json.loads(capsys.readouterr().out)
    assert (preview["judgments"], preview["calls"], preview["reusable"]) == (12, 12, 0)
    assert not Run.objects.exists()
    with pytest.raises(Exception, match="No judge endpoint 'nope'"):
        call_command("score", project=project.slug, judge="nope", mode="grouped", dry_run=True)


def test_only_approved_versions_when_asked(project, editor, reviewer, endpoint, fake_llm, eager):
    rubric = make_rubric_project(project, editor, n_prompts=1, n_responses=2, n_criteria=2)
    with pytest.raises(Exception, match="approved version"):
        run_services.run_create(
            project=project,
            actor=editor,
            endpoint=endpoint,
            mode="per_criterion",
            versions="approved",
        )
    rubric_workflow.rubric_submit_for_review(rubric=rubric, actor=editor)
    rubric_workflow.rubric_review(rubric=rubric, actor=reviewer, decision="approve")
    run = launch(eager, project, editor, endpoint, mode="per_criterion", versions="approved")
    assert run.total == 4
    assert Rubric.objects.get(pk=rubric.pk).approved_version.number == 1
    assert re.match(r"judge-criterion-v\d", run.template_version)


def test_same_answer_to_different_questions_is_judged_for_each(
    project, editor, endpoint, fake_llm, eager
):
    rubric_services.rubric_create(
        project=project,
        title="t",
        author=editor,
        criteria=[CriterionInput(text="Is right", points=1)],
    )
    one = PromptFactory(project=project, messages=[{"role": "user", "content": "QUESTION ONE"}])
    two = PromptFactory(project=project, messages=[{"role": "user", "content": "QUESTION TWO"}])
    ResponseFactory(prompt=one, source="m", content="Yes.")
    ResponseFactory(prompt=two, source="m", content="Yes.")
    fake_llm.configure(
        rules=[
            Rule("QUESTION ONE", {"explanation": "one", "criteria_met": True}),
            Rule("QUESTION TWO", {"explanation": "two", "criteria_met": False}),
        ]
    )
    run = launch(eager, project, editor, endpoint, mode=Run.Mode.PER_CRITERION)
    assert (run.done, run.total, fake_llm.stats()["requests"]) == (2, 2, 2)
    scores = {r.response.prompt_id: r.score for r in run_results(run).responses}
    assert scores == {one.pk: 1.0, two.pk: 0.0}


def test_retry_keeps_each_unit_once_and_the_cost_of_both_attempts(
    project, editor, endpoint, fake_llm, eager
):
    rubric_services.rubric_create(
        project=project,
        title="t",
        author=editor,
        criteria=[CriterionInput(text="Alpha", points=1), CriterionInput(text="Beta", points=9)],
    )
    ResponseFactory(prompt=PromptFactory(project=project), source="m", content="Answer")
    fake_llm.configure(
        rules=[
            Rule("] Alpha", '{"explanation": "cut'),  # malformed twice: a failed judgment
            Rule("] Beta", {"explanation": "yes", "criteria_met": True}),
        ]
    )
    run = launch(eager, project, editor, endpoint, mode=Run.Mode.PER_CRITERION)
    assert (run.done, run.failed) == (1, 1)
    cost_before = run.cost
    with pytest.raises(Exception, match="once the run has ended"):
        Run.objects.filter(pk=run.pk).update(status="paused")
        run_services.run_retry_failed(run=Run.objects.get(pk=run.pk), actor=editor)
    Run.objects.filter(pk=run.pk).update(status="done")
    fake_llm.configure(
        rules=[
            Rule("] Alpha", {"explanation": "no", "criteria_met": False}),
            *fake_llm.config.rules[1:],
        ]
    )
    eager(lambda: run_services.run_retry_failed(run=Run.objects.get(pk=run.pk), actor=editor))
    run.refresh_from_db()
    assert (run.status, run.done, run.failed, run.total) == ("done", 2, 0, 2)
    (result,) = run_results(run, with_verdicts=True).responses
    assert len(result.verdicts) == 2 and result.score == pytest.approx(0.9)
    assert run.cost > cost_before  # the failed attempts stay billed
    assert Judgment.objects.count() == 2


def test_resume_of_a_run_paused_after_its_last_chunk_finishes_it(
    project, editor, endpoint, fake_llm, eager
):
    make_rubric_project(project, editor, n_prompts=1, n_responses=2, n_criteria=2)
    run = launch(eager, project, editor, endpoint, mode=Run.Mode.PER_CRITERION)
    Run.objects.filter(pk=run.pk).update(status="paused")
    eager(lambda: run_services.run_resume(run=Run.objects.get(pk=run.pk), actor=editor))
    assert Run.objects.get(pk=run.pk).status == "done"


def test_the_rate_counts_active_time_and_pauses_are_left_out():
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    run = Run(status=Run.Status.RUNNING, total=1000, done=300, failed=0, reused=0)
    run.started_at, run.paused_seconds = start, 200.0  # 200 s paused earlier
    figures = run_selectors.run_rate(run, now=start + timedelta(seconds=500))
    assert figures["active"] == 300 and figures["rate"] == pytest.approx(1.0)
    assert figures["eta"] == pytest.approx(700)
    run.status, run.paused_at = Run.Status.PAUSED, start + timedelta(seconds=500)
    later = run_selectors.run_rate(run, now=start + timedelta(seconds=5000))
    assert later["active"] == 300 and later["rate"] == pytest.approx(1.0)  # a pause stops the clock
    assert later["eta"] is None  # nothing is left "about" while nobody works on it
    run.status, run.finished_at = Run.Status.CANCELLED, start + timedelta(seconds=900)
    assert run_selectors.run_rate(run, now=start + timedelta(seconds=9000))["active"] == 300


def test_pause_and_resume_record_the_time_spent_paused(project, editor, endpoint, fake_llm, eager):
    make_rubric_project(project, editor, n_prompts=1, n_responses=2, n_criteria=2)
    run = launch(eager, project, editor, endpoint, mode=Run.Mode.PER_CRITERION)
    Run.objects.filter(pk=run.pk).update(status="running")
    run_services.run_pause(run=run, actor=editor)
    paused = Run.objects.get(pk=run.pk)
    assert paused.status == "paused" and paused.paused_at is not None
    Run.objects.filter(pk=run.pk).update(paused_at=paused.paused_at - timedelta(minutes=10))
    eager(lambda: run_services.run_resume(run=Run.objects.get(pk=run.pk), actor=editor))
    resumed = Run.objects.get(pk=run.pk)
    assert resumed.paused_at is None and resumed.paused_seconds >= 600


@pytest.mark.parametrize(
    "options, message",
    [
        ({"mode": "bogus"}, "Unknown mode"),
        ({"mode": "per_criterion", "samples": 100000}, "between 1 and 20"),
        (
            {"mode": "pairwise", "pairs_per_prompt": -1, "pair_plan": "sampled"},
            "between 1 and 1000",
        ),
        ({"mode": "per_criterion", "budget": float("nan")}, "positive amount"),
    ],
)
def test_bad_run_options_are_clear_errors(project, editor, endpoint, options, message):
    make_rubric_project(project, editor, n_prompts=1, n_responses=2, n_criteria=2)
    with pytest.raises(Exception, match=message):
        run_services.run_create(project=project, actor=editor, endpoint=endpoint, **options)
    assert not Run.objects.exists()
