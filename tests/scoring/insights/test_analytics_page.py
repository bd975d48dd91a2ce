"""The Analytics tab: a run's stored figures with every undefined one saying why, the flagged
criteria with their reasons and the way back to the editor or to Critique (whose proposal
carries the figures), the tables as CSV, and computing on request."""

from __future__ import annotations

import csv
import io

from django.urls import reverse

from annotation.prompts.models import PreferenceLabel
from annotation.rubrics import services as rubric_services
from annotation.rubrics.services import CriterionInput
from scoring.coauthoring.models import CoauthorJob, Proposal
from scoring.insights.models import RunInsights
from scoring.runs import services as run_services
from scoring.runs.models import Run
from tests.factories import PromptFactory, ResponseFactory
from tests.scoring.insights.test_insights import CRITERIA


def _world(project, editor):  # type: ignore[no-untyped-def]
    """Per-prompt rubrics (Critique works on a prompt's rubric), 12 prompts of 4 answers."""
    prompts = []
    for i in range(12):
        prompt = PromptFactory(project=project, external_id=f"case-{i}")
        rubric_services.rubric_create(
            project=project, prompt=prompt, title=f"Case {i}", author=editor,
            criteria=[CriterionInput(text=t, points=p) for t, p in CRITERIA],
        )  # fmt: skip
        good = ResponseFactory(
            prompt=prompt, source="careful", content=f"Call emergency services now ({i})."
        )
        poor = ResponseFactory(
            prompt=prompt, source="casual", content=f"Drink water and lie down ({i})."
        )
        PreferenceLabel.objects.create(prompt=prompt, chosen=good, rejected=poor)
        ResponseFactory(prompt=prompt, source="careful", content=f"Phone emergency services ({i}).")
        ResponseFactory(prompt=prompt, source="casual", content=f"Sleep it off ({i}).")
        prompts.append(prompt)
    return prompts


def _finished(eager, project, editor, judge, **options):  # type: ignore[no-untyped-def]
    run = eager(
        lambda: run_services.run_create(project=project, actor=editor, endpoint=judge, **options)
    )
    return Run.objects.get(pk=run.pk)


def test_the_page_shows_the_figures_and_says_why_one_is_undefined(
    client, project, editor, viewer, judge, eager
):
    _world(project, editor)
    run = _finished(eager, project, editor, judge, mode=Run.Mode.PER_CRITERION)
    client.force_login(viewer)
    html = client.get(reverse("scoring:analytics", args=[project.slug])).content.decode()
    assert f"run #{run.pk}" in html and 'id="criteria-table"' in html
    assert "Recommends rest only" in html and "Met by 0% of the 4 responses judged" in html
    assert "one class only: every response has the same verdict" in html  # undefined, with why
    assert "Judge noise between samples: not measured, one sample per response" in html
    assert "Judge noise between judges: not measured" in html and "Flips (samples)" not in html
    assert 'id="tail-table"' in html and "From the preference labels" in html
    assert "No pairwise run has finished in this project." in html
    assert "Send these to Critique" not in html  # a viewer reads; editors act
    assert 'id="analytics-data"' in html and "js/analytics-chart.js" in html
    rows = list(csv.reader(io.StringIO(client.get(
        reverse("scoring:analytics_csv", args=[project.slug, run.pk, "criteria"])
    ).content.decode())))  # fmt: skip
    assert rows[0][:4] == ["key", "text", "points", "hit_rate"] and len(rows) == 1 + 12 * 4
    board = client.get(reverse("scoring:analytics_csv", args=[project.slug, run.pk, "leaderboard"]))
    assert board.status_code == 200 and b"labels,careful" in board.content
    assert (
        client.get(
            reverse("scoring:analytics_csv", args=[project.slug, run.pk, "nope"])
        ).status_code
        == 404
    )


def test_a_flagged_criterion_goes_to_critique_with_its_figures(
    client, project, editor, judge, eager
):
    prompts = _world(project, editor)
    run = _finished(eager, project, editor, judge, mode=Run.Mode.PER_CRITERION)
    figures = RunInsights.objects.get(run=run).figures
    rest = next(
        c for c in figures["criteria"] if c["text"] == "Recommends rest only" and c["flags"]
    )
    client.force_login(editor)
    html = client.get(reverse("scoring:analytics", args=[project.slug])).content.decode()
    assert "Send these to Critique" in html and "Open the rubric in the editor" in html
    url = reverse("scoring:analytics_critique", args=[project.slug, run.pk])
    answer = eager(lambda: client.post(url, {"key": rest["key"]}, follow=True))
    job = CoauthorJob.objects.get(kind="critique")
    assert job.prompt_id in {p.pk for p in prompts}
    analytics = job.params["analytics"]
    assert analytics["run"] == run.pk
    assert any(
        c["text"] == "Recommends rest only" and "Met by 0% of the 4 responses" in c["reasons"][0]
        for c in analytics["criteria"]
    )
    assert "Sent to Critique" in answer.content.decode()
    proposal = Proposal.objects.get(job=job)  # the worker ran (eagerly) with the offline judge
    assert proposal.notes["analytics"] == analytics and proposal.status == "pending"
    page = client.get(
        reverse("scoring:coauthor_panel", args=[project.slug, job.prompt_id])
    ).content.decode()
    assert "Sent from Analytics" in page and "Met by 0%" in page


def test_computing_on_request_and_the_empty_states(client, project, editor, judge, eager):
    client.force_login(editor)
    url = reverse("scoring:analytics", args=[project.slug])
    assert "No run has finished in this project yet." in client.get(url).content.decode()
    _world(project, editor)
    run = _finished(eager, project, editor, judge, mode=Run.Mode.PER_CRITERION)
    RunInsights.objects.all().delete()
    assert "Compute them now" in client.get(url).content.decode()
    eager(lambda: client.post(reverse("scoring:analytics_compute", args=[project.slug, run.pk])))
    assert RunInsights.objects.filter(run=run, error="").exists()
    assert 'id="criteria-table"' in client.get(url).content.decode()


def test_the_figures_over_the_api(api, project, editor, viewer, judge, eager):
    _world(project, editor)
    run = _finished(eager, project, editor, judge, mode=Run.Mode.PER_CRITERION)
    api.force_authenticate(viewer)
    url = f"/api/projects/{project.slug}/analytics/runs/{run.pk}/"
    body = api.get(url).json()
    stored = RunInsights.objects.get(run=run).figures
    assert body["run"] == run.pk and body["criteria"] == stored["criteria"]
    assert {"snr", "tail", "leaderboard", "bias", "redundant"} <= set(body)
    RunInsights.objects.all().delete()
    answer = api.get(url)
    assert answer.status_code == 409 and "not computed yet" in answer.json()["detail"]


def test_the_page_reads_stored_figures_in_a_bounded_number_of_queries(
    client, project, editor, judge, eager, django_assert_max_num_queries
):
    _world(project, editor)
    _finished(eager, project, editor, judge, mode=Run.Mode.PER_CRITERION)
    client.force_login(editor)
    url = reverse("scoring:analytics", args=[project.slug])
    client.get(url)
    with django_assert_max_num_queries(
        12
    ):  # whatever the run's size (benchmarks/bench_insights.py)
        assert client.get(url).status_code == 200


def test_one_rubrics_criteria_from_its_editor(client, project, editor, judge, eager):
    prompts = _world(project, editor)
    _finished(eager, project, editor, judge, mode=Run.Mode.PER_CRITERION)
    client.force_login(editor)
    rubric = prompts[0].rubrics.get()
    editor_page = client.get(
        reverse("annotation:prompt_detail", args=[project.slug, prompts[0].pk])
    )
    link = f"{reverse('scoring:analytics', args=[project.slug])}?rubric={rubric.pk}"
    assert link in editor_page.content.decode()
    html = client.get(link).content.decode()
    assert f"<strong>{rubric.title}</strong>" in html
    table = html[html.index('id="criteria-table"') :]
    table = table[table.index("<tbody>") : table.index("</tbody>")]
    assert table.count("<tr") == len(CRITERIA)  # this rubric's criteria only, not all 48
    assert "Case 1" not in html and "Case 0" in html
    assert (
        client.get(f"{reverse('scoring:analytics', args=[project.slug])}?rubric=999999").status_code
        == 404
    )
