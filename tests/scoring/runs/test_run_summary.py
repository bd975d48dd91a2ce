"""The run page reads a finished run's stored summary, computed by a worker when the run
finishes, and shows exactly what the live results show; a large run without one waits for
the worker instead of reading every judgment in the request."""

from __future__ import annotations

from django.urls import reverse

from annotation.rubrics import services as rubric_services
from annotation.rubrics.services import CriterionInput
from fakellm.config import Rule
from scoring.runs import services as run_services
from scoring.runs import summary as run_summary
from scoring.runs.models import Run
from scoring.runs.results import run_results
from scoring.runs.summary import RunSummary
from tests.factories import PromptFactory, ResponseFactory

RULES = [
    Rule(r"(?s)(BROKEN.*\] Alpha|\] Alpha.*BROKEN)", '{"explanation": "cut', regex=True),
    Rule(
        r"(?s)(YES.*\] Beta|\] Beta.*YES)", {"explanation": "y", "criteria_met": True}, regex=True
    ),
    Rule("<<<CRITERION", {"explanation": "n", "criteria_met": False}),
]


def _graded_run(project, editor, judge, fake_llm, eager, monkeypatch):  # type: ignore[no-untyped-def]
    rubric_services.rubric_create(
        project=project, title="t", author=editor,
        criteria=[CriterionInput(text=t, points=p) for t, p in (("Alpha", 1), ("Beta", 3), ("Gamma", 2))],
    )  # fmt: skip
    for n in range(6):
        prompt = PromptFactory(project=project)
        for source in ("m1", "m2", "m3"):
            text = f"{source} {'YES' if n % 2 else 'no'} {'BROKEN' if n == 4 and source == 'm2' else ''}"
            ResponseFactory(prompt=prompt, source=source, content=text)
    fake_llm.configure(rules=RULES)
    # chunks of 5 units: a prompt's 9 units straddle chunks
    monkeypatch.setattr(run_services, "chunk_size", lambda mode, endpoint, units: 5)
    run = eager(lambda: run_services.run_create(
        project=project, actor=editor, endpoint=judge, mode="per_criterion"))  # fmt: skip
    run.refresh_from_db()
    assert run.status == "done" and run.failed == 1
    return run


def test_the_summary_shows_what_the_live_results_show(  # type: ignore[no-untyped-def]
    project, editor, judge, fake_llm, eager, monkeypatch
):
    monkeypatch.setattr(run_summary, "HEAD_RESPONSES", 5)
    run = _graded_run(project, editor, judge, fake_llm, eager, monkeypatch)
    summary = RunSummary.objects.get(run=run)  # stored by the worker when the run finished
    assert summary.stamp == run_summary.run_stamp(run)
    assert run.chunks.count() > 2
    page = run_summary.page_results(run)
    live = run_results(run)
    assert page is not None
    assert len(page.responses) == len(live.responses) == 18
    assert [(r.response.pk, r.sample, r.score, r.expected, r.failed, r.reused) for r in page.responses] == [
        (r.response.pk, r.sample, r.score, r.expected, r.failed, r.reused) for r in live.responses[:5]
    ]  # fmt: skip
    assert page.responses[:500][0].response.prompt.external_id
    assert [(s.source, len(s.scores), s.undefined, s.mean, s.se, s.histogram) for s in page.sources] == [
        (s.source, len(s.scores), s.undefined, s.mean, s.se, s.histogram) for s in live.sources
    ]  # fmt: skip
    assert [(j.pk, c["text"]) for j, c in page.failures] == [
        (j.pk, c["text"]) for j, c in live.failures
    ]
    assert [g.kind for g in page.failure_groups] == ["malformed"]
    # the figures were read a chunk at a time; read whole they are the same
    assert run_summary._graded_figures(run) == run_summary._figures_of(
        live, run_summary._chunk_ranges(run)
    )


def test_a_large_run_without_a_summary_waits_for_the_worker(  # type: ignore[no-untyped-def]
    client, project, editor, outsider, judge, fake_llm, eager, monkeypatch
):
    run = _graded_run(project, editor, judge, fake_llm, eager, monkeypatch)
    RunSummary.objects.all().delete()
    monkeypatch.setattr(run_summary, "LIVE_UNITS", 10)
    client.force_login(editor)
    url = reverse("scoring:run", args=[project.slug, run.pk])
    html = eager(lambda: client.get(url)).content.decode()  # asks a worker, reads nothing
    assert "Scores by source" not in html and "Show the results" in html
    assert RunSummary.objects.get(run=run).stamp == run_summary.run_stamp(run)
    html = client.get(url).content.decode()
    assert "Scores by source" in html and "<strong>1 judgment</strong>" in html
    assert "The first 500 of" not in html
    # a response's verdicts read only the chunks that hold its units
    response = run_results(run).responses[0].response
    chunks = run_summary.response_chunks(run, response.pk)
    assert chunks is not None and 0 < len(chunks) < run.chunks.count()
    detail = client.get(reverse("scoring:run_response", args=[project.slug, run.pk, response.pk]))
    assert detail.status_code == 200 and "Gamma" in detail.content.decode()
    # a retried run finishes again: its summary is stale until computed again
    Run.objects.filter(pk=run.pk).update(failed=0, done=run.done + 1)
    run.refresh_from_db()
    assert run_summary.current_summary(run) is None
    client.force_login(outsider)
    assert client.get(url).status_code == 404


def test_a_pairwise_runs_summary_lists_its_pairs_as_the_live_results(  # type: ignore[no-untyped-def]
    project, editor, judge, fake_llm, eager
):
    rubric_services.rubric_create(
        project=project, title="t", author=editor, criteria=[CriterionInput(text="Right", points=5)]
    )
    for _ in range(3):
        prompt = PromptFactory(project=project)
        for source in ("a", "b", "c"):
            ResponseFactory(prompt=prompt, source=source, content=f"answer {source}")
    run = eager(lambda: run_services.run_create(
        project=project, actor=editor, endpoint=judge, mode=Run.Mode.PAIRWISE))  # fmt: skip
    run.refresh_from_db()
    assert run.status == "done"
    page = run_summary.page_results(run)
    live = run_results(run)
    assert page is not None and len(page.pairs) == len(live.pairs) > 0
    assert [(p.a.pk, p.b.pk, p.winner, p.consistent, p.failed) for p in page.pairs] == [
        (p.a.pk, p.b.pk, p.winner, p.consistent, p.failed) for p in live.pairs
    ]
    assert page.position == live.position and not page.responses and not page.sources


def test_the_responses_table_lists_a_hundred_rows_then_more_on_request(  # type: ignore[no-untyped-def]
    client, project, editor, judge, fake_llm, eager, monkeypatch
):
    from scoring.runs import views as run_views

    run = _graded_run(project, editor, judge, fake_llm, eager, monkeypatch)
    monkeypatch.setattr(run_views, "ROWS", 5)
    client.force_login(editor)
    url = reverse("scoring:run", args=[project.slug, run.pk])
    html = client.get(url).content.decode()
    assert html.count('class="verdicts small"') == 5 and "Show more (5 of 18 shown)" in html
    assert 'href="?rows=10#more-responses"' in html
    more = client.get(url, {"part": "responses", "from": 5, "rows": 10}, HTTP_HX_REQUEST="true")
    rows = more.content.decode()
    assert "<html" not in rows and rows.count('class="verdicts small"') == 5
    assert "Show more (10 of 18 shown)" in rows
    everything = client.get(url, {"rows": 18}).content.decode()  # without JavaScript
    assert everything.count('class="verdicts small"') == 18 and "Show more" not in everything
