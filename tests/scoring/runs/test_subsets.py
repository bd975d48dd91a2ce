"""Runs on a subset of a project's prompts: filters, a list of ids and a seeded sample
narrow the prompts; the preview counts only those, and the run judges only those."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotation.errors import ApplicationError
from annotation.rubrics import services as rubric_services
from annotation.rubrics.services import CriterionInput
from scoring.runs.models import Run, RunJudgment
from scoring.runs.subsets import Subset, subset_prompt_ids
from tests.factories import PromptFactory, ResponseFactory
from tests.scoring.runs.test_runs import make_rubric_project


@pytest.fixture
def prompts(project, editor):  # type: ignore[no-untyped-def]
    """Six prompts with their own rubrics, two responses each; the odd ones' rubrics
    carry the tag theme:fever, and their texts mention a fever."""
    out = []
    for i in range(6):
        topic = "fever" if i % 2 else "cough"
        prompt = PromptFactory(
            project=project, external_id=f"s{i}",
            messages=[{"role": "user", "content": f"My child has a {topic}. Question {i}."}],
        )  # fmt: skip
        for source in ("model-a", "model-b"):
            ResponseFactory(prompt=prompt, source=source, content=f"{source} on {i}")
        rubric_services.rubric_create(
            project=project, prompt=prompt, title=f"r{i}", author=editor,
            criteria=[CriterionInput(text=f"Addresses the {topic}", points=5,
                                     tags=[f"theme:{topic}"]),
                      CriterionInput(text="Advises a doctor when needed", points=3)],
        )  # fmt: skip
        out.append(prompt)
    return out


def ids(project, **subset) -> list[str]:  # type: ignore[no-untyped-def]
    from annotation.prompts.models import Prompt

    chosen = subset_prompt_ids(project=project, subset=Subset(**subset))
    return list(
        Prompt.objects.filter(pk__in=chosen).order_by("pk").values_list("external_id", flat=True)
    )


def test_filters_ids_and_a_seeded_sample_narrow_the_prompts(project, prompts):  # type: ignore[no-untyped-def]
    assert subset_prompt_ids(project=project, subset=Subset()) == []  # the whole project
    assert ids(project, q="fever") == ["s1", "s3", "s5"]
    assert ids(project, tags=("theme:cough",)) == ["s0", "s2", "s4"]
    assert ids(project, external_ids=("s4", "s1")) == ["s1", "s4"]
    first = ids(project, sample=3, seed=7)
    assert len(first) == 3 and first == ids(project, sample=3, seed=7)  # the same draw
    draws = {tuple(ids(project, sample=3, seed=seed)) for seed in range(8)}
    assert len(draws) > 1  # the seed decides which three
    assert set(ids(project, q="fever", sample=2, seed=1)) <= {"s1", "s3", "s5"}
    assert ids(project, sample=50) == [f"s{i}" for i in range(6)]  # k above the count: all


def test_a_subset_that_matches_nothing_is_an_error_not_everything(project, prompts):  # type: ignore[no-untyped-def]
    with pytest.raises(ApplicationError, match="No prompt matches"):
        subset_prompt_ids(project=project, subset=Subset(q="no such words"))
    with pytest.raises(ApplicationError, match="has the id nope"):
        subset_prompt_ids(project=project, subset=Subset(external_ids=("s1", "nope")))


def test_the_preview_counts_and_the_run_judges_only_the_sampled_prompts(  # type: ignore[no-untyped-def]
    client, project, editor, judge, eager
):
    make_rubric_project(project, editor, n_prompts=10, n_responses=2, n_criteria=3)
    url = reverse("scoring:runs", args=[project.slug])
    client.force_login(editor)
    form = {"mode": "per_criterion", "endpoint": judge.pk, "sample": "5", "seed": "3"}
    html = client.post(url, {**form, "preview": "1"}).content.decode()
    assert "<dt>Prompts</dt><dd>5 (a subset)</dd>" in html
    assert "Launch 30 judgments" in html  # 5 prompts × 2 responses × 3 criteria (60 in all)
    response = eager(lambda: client.post(url, {**form, "launch": "1"}))
    run = Run.objects.get()
    assert len(run.prompt_ids) == 5 and run.status == "done"
    judged = set(
        RunJudgment.objects.filter(run=run).values_list("judgment__response__prompt_id", flat=True)
    )
    assert judged == set(run.prompt_ids)
    page = client.get(response.url).content.decode()
    assert "5 prompts (a subset)" in page
    again = client.post(url, {**form, "preview": "1"})
    assert "5 (a subset)" in again.content.decode()
