"""The run page tells the truth: failures grouped by reason with the action that fixes
them, only the control that applies, and the finished run's results loaded by itself."""

from __future__ import annotations

from django.urls import reverse

from annotation.rubrics import services as rubric_services
from annotation.rubrics.services import CriterionInput
from fakellm.config import Rule
from scoring.judges.failures import failure_groups, failure_kind
from scoring.runs.models import Run
from tests.factories import PromptFactory, ResponseFactory


def test_failures_are_grouped_by_kind_with_what_fixes_them():
    errors = [
        "malformed: no JSON object",
        "timeout: read timed out",
        "malformed: criteria_met missing",
        "prompt: 9000 tokens, the model reads 4096",
        "something new",
    ]
    groups = failure_groups(errors)
    assert [(g.kind, g.count) for g in groups] == [
        ("malformed", 2), ("other", 1), ("prompt", 1), ("timeout", 1)
    ]  # fmt: skip
    malformed = groups[0]
    assert "not valid JSON" in malformed.what and "Retry failed" in malformed.action
    assert malformed.example == "malformed: no JSON object"
    assert "timeout" in groups[3].action
    assert failure_kind("server_error: 502") == "server_error"
    assert failure_kind("note: not a kind") == "other"
    assert failure_groups([]) == []


def test_the_run_page_groups_failures_and_offers_only_what_applies(  # type: ignore[no-untyped-def]
    client, project, editor, judge, fake_llm, eager
):
    from scoring.runs import services as run_services

    rubric_services.rubric_create(
        project=project, title="t", author=editor,
        criteria=[CriterionInput(text="Alpha", points=1), CriterionInput(text="Beta", points=9)],
    )  # fmt: skip
    ResponseFactory(prompt=PromptFactory(project=project), source="m", content="Answer")
    fake_llm.configure(
        rules=[
            Rule("] Alpha", '{"explanation": "cut'),  # malformed twice: a failed judgment
            Rule("] Beta", {"explanation": "yes", "criteria_met": True}),
        ]
    )
    run = eager(lambda: run_services.run_create(
        project=project, actor=editor, endpoint=judge, mode="per_criterion"))  # fmt: skip
    run.refresh_from_db()
    assert (run.status, run.done, run.failed) == ("done", 1, 1)
    client.force_login(editor)
    page = reverse("scoring:run", args=[project.slug, run.pk])
    html = client.get(page).content.decode()
    assert 'id="failure-groups"' in html
    assert "<strong>1 judgment</strong>: the judge&#x27;s answer was not valid JSON" in html
    assert 'value="retry_failed"' in html
    assert 'value="resume"' not in html and 'value="pause"' not in html  # a finished run

    # A running run offers Pause, not Resume; a paused one Resume, not Pause.
    Run.objects.filter(pk=run.pk).update(status="running", finished_at=None)
    html = client.get(page).content.decode()
    assert 'value="pause"' in html and 'value="resume"' not in html
    Run.objects.filter(pk=run.pk).update(status="paused")
    html = client.get(page).content.decode()
    assert 'value="resume"' in html and 'value="pause"' not in html

    # The progress poll of a run that has just finished asks htmx to load the whole page,
    # results and charts included; an unfinished one only swaps the progress.
    Run.objects.filter(pk=run.pk).update(status="running")
    poll = client.get(page, {"part": "progress"}, HTTP_HX_REQUEST="true")
    assert "HX-Refresh" not in poll
    Run.objects.filter(pk=run.pk).update(status="done")
    poll = client.get(page, {"part": "progress"}, HTTP_HX_REQUEST="true")
    assert poll["HX-Refresh"] == "true"
