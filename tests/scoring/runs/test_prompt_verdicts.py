"""The prompt page's verdicts panel: each criterion's verdict for each response of the
prompt from a per-criterion run, the responses' scores, criteria every response meets (or
none) marked, what changed since, and a re-grade that calls the judge only for what
changed."""

from __future__ import annotations

from django.urls import reverse

from annotation.rubrics import services as rubric_services
from annotation.rubrics.services import CriterionInput
from scoring.runs import services as run_services
from scoring.runs.models import Judgment, Run
from tests.factories import PromptFactory, ResponseFactory
from tests.scoring.runs.test_runs import MET_IF_A_TO_M


def _graded(project, editor, judge, fake_llm, eager):  # type: ignore[no-untyped-def]
    prompt = PromptFactory(project=project, external_id="chest-1")
    for source in ("model-a", "model-b"):
        ResponseFactory(prompt=prompt, source=source, content=f"{source}: call emergency services")
    rubric = rubric_services.rubric_create(
        project=project, prompt=prompt, title="Chest pain", author=editor,
        criteria=[CriterionInput(text="Advises calling emergency services", points=8),
                  CriterionInput(text="Names aspirin", points=3),
                  CriterionInput(text="Recommends waiting a day", points=-5)],
    )  # fmt: skip
    fake_llm.configure(rules=MET_IF_A_TO_M)  # met when the criterion starts with A to M
    run = eager(lambda: run_services.run_create(
        project=project, actor=editor, endpoint=judge, mode="per_criterion"))  # fmt: skip
    return prompt, rubric, run


def test_the_panel_shows_each_criterions_verdict_per_response(  # type: ignore[no-untyped-def]
    client, project, editor, viewer, judge, fake_llm, eager
):
    prompt, _, run = _graded(project, editor, judge, fake_llm, eager)
    url = reverse("scoring:prompt_verdicts", args=[project.slug, prompt.pk])
    client.force_login(viewer)
    html = client.get(url).content.decode()
    grid = html.split('id="verdict-grid"', 1)[1]
    # Met when the criterion starts with A to M: "Advises…" for both responses only.
    assert grid.count("✓ met") == 2 and grid.count("✗ not met") == 4
    assert grid.count("met by every response") == 1 and grid.count("met by none") == 2
    assert 'title="It does."' in grid  # the explanation on hover
    assert grid.count("<strong>0.727</strong>") == 2  # 8 of the 11 positive points
    assert "Re-grade this prompt" not in html  # viewers read
    assert client.post(reverse("scoring:prompt_regrade", args=[project.slug, prompt.pk]),
                       {"run": run.pk}).status_code == 403  # fmt: skip


def test_after_an_edit_a_regrade_calls_the_judge_only_for_the_changed_criterion(  # type: ignore[no-untyped-def]
    client, project, editor, judge, fake_llm, eager
):
    prompt, rubric, run = _graded(project, editor, judge, fake_llm, eager)
    rubric_services.rubric_version_create(
        rubric=rubric, author=editor,
        criteria=[CriterionInput(text="Advises calling emergency services", points=8,
                                 key=c.key) if i == 0 else
                  CriterionInput(text="Tells the patient to chew aspirin", points=3, key=c.key)
                  if i == 1 else
                  CriterionInput(text=c.text, points=c.points, key=c.key)
                  for i, c in enumerate(rubric.current_version.criteria.order_by("position"))],
    )  # fmt: skip
    url = reverse("scoring:prompt_verdicts", args=[project.slug, prompt.pk])
    client.force_login(editor)
    html = client.get(url).content.decode()
    assert html.count("changed since this run") == 1
    before = Judgment.objects.count()
    regrade = reverse("scoring:prompt_regrade", args=[project.slug, prompt.pk])
    answer = eager(lambda: client.post(regrade, {"run": run.pk}, HTTP_HX_REQUEST="true"))
    assert Judgment.objects.count() - before == 2  # one new criterion text × 2 responses
    again = Run.objects.exclude(pk=run.pk).get()
    assert again.prompt_ids == [prompt.pk] and again.status == "done" and again.reused == 4
    # The answer shows the new run (queued when it was made: the panel polls until it is
    # done); the panel then shows its verdicts.
    assert (
        f"Run #{again.pk} is" in answer.content.decode()
        and "load delay:2s" in answer.content.decode()
    )
    panel = client.get(url).content.decode()
    assert f"#{again.pk}" in panel and "changed since this run" not in panel
    grid = panel.split('id="verdict-grid"', 1)[1]
    assert "Tells the patient to chew aspirin" in grid
    assert grid.count("✗ not met") == 4  # "Tells…" and "Recommends…" start after M
