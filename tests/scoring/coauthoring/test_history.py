"""A prompt's co-author history: every job on it, newest first, a failed one with its
reason in plain words and what fixes it; the batch page lists single-prompt jobs too."""

from __future__ import annotations

from django.urls import reverse

from scoring.coauthoring.models import CoauthorJob
from tests.factories import CoauthorJobFactory, JudgeEndpointFactory, PromptFactory


def test_the_panel_lists_a_prompts_jobs_with_plain_reasons(client, project, editor):  # type: ignore[no-untyped-def]
    prompt = PromptFactory(project=project, external_id="hx-1")
    endpoint = JudgeEndpointFactory(project=project)
    done = dict(project=project, prompt=prompt, endpoint=endpoint, created_by=editor)
    CoauthorJobFactory(**done, status=CoauthorJob.Status.DONE, kind=CoauthorJob.Kind.CRITIQUE)
    CoauthorJobFactory(**done, status=CoauthorJob.Status.FAILED, error="timeout: read timed out")
    latest = CoauthorJobFactory(
        **done, status=CoauthorJob.Status.FAILED, error="malformed: no JSON object"
    )
    client.force_login(editor)
    html = client.get(
        reverse("scoring:coauthor_panel", args=[project.slug, prompt.pk])
    ).content.decode()
    newest, history = html.split('id="coauthor-history"', 1)
    assert "The job failed: the judge&#x27;s answer was not valid JSON" in newest
    assert f'title="{latest.error}"' in newest  # the recorded error is one hover away
    assert "Earlier co-author jobs on this prompt (2)" in history
    assert "the endpoint did not answer in time" in history and "Raise the endpoint" in history
    assert "Critique" in history or "critique" in history.lower()


def test_the_batch_page_lists_single_prompt_jobs_too(client, project, editor):  # type: ignore[no-untyped-def]
    prompt = PromptFactory(project=project, external_id="single-7")
    CoauthorJobFactory(project=project, prompt=prompt, created_by=editor)
    CoauthorJobFactory(project=project, prompt=None, batch=True, created_by=editor)
    client.force_login(editor)
    html = client.get(reverse("scoring:batch", args=[project.slug])).content.decode()
    table = html.split('id="coauthor-jobs"', 1)[1]
    assert "single-7" in table and "a batch" in table
