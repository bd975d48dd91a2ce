"""The verdicts panel of a prompt's page: an htmx fragment loaded by URL (``annotation``
never imports this app) showing how the rubric scored the prompt's responses, and the
one-click re-grade of the prompt after an edit (a run on this prompt alone: judgments whose
inputs did not change are reused, so the judge is called only for the changed criteria)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from annotation.errors import ApplicationError
from annotation.http import SignedInRequest
from annotation.projects import selectors as project_selectors
from annotation.projects.models import Role
from annotation.projects.selectors import ProjectAccess
from annotation.prompts import selectors as prompt_selectors
from annotation.prompts.models import Prompt
from scoring.runs import services as run_services
from scoring.runs.forms import RunChoiceForm
from scoring.runs.models import Run
from scoring.runs.verdicts import current_criteria, prompt_verdicts, runs_for_prompt


def _panel(
    request: SignedInRequest,
    access: ProjectAccess,
    prompt: Prompt,
    *,
    run_id: int | None = None,
    error: str = "",
) -> HttpResponse:
    runs = runs_for_prompt(prompt=prompt)
    run = next((r for r in runs if r.pk == run_id), None) if run_id else None
    if run is None:  # the latest that finished, else the latest
        run = next((r for r in runs if r.finished), runs[0] if runs else None)
    verdicts = (
        prompt_verdicts(prompt=prompt, run=run, current=current_criteria(prompt=prompt))
        if run is not None and run.finished
        else None
    )
    context = {
        "project": access.project,
        "prompt": prompt,
        "runs": runs,
        "run": run,
        "verdicts": verdicts,
        "can_run": access.can_edit and run is not None and run.endpoint_id is not None,
        "error": error,
    }
    return render(request, "scoring/_verdicts.html", context)


@login_required
@require_GET
def prompt_verdicts_panel(request: SignedInRequest, slug: str, prompt_id: int) -> HttpResponse:
    """``?run=<id>`` chooses the run; by default the latest finished one."""
    access = project_selectors.project_get_for_user(user=request.user, slug=slug)
    prompt = prompt_selectors.prompt_get(project=access.project, prompt_id=prompt_id)
    form = RunChoiceForm(request.GET)
    run_id = form.cleaned_data["run"] if form.is_valid() else None
    return _panel(request, access, prompt, run_id=run_id)


@login_required
@require_POST
def prompt_regrade(request: SignedInRequest, slug: str, prompt_id: int) -> HttpResponse:
    """Grade this prompt again with the endpoint, mode and options of the shown run, on
    the rubric as it is now."""
    access = project_selectors.project_get_for_user(
        user=request.user, slug=slug, min_role=Role.EDITOR
    )
    prompt = prompt_selectors.prompt_get(project=access.project, prompt_id=prompt_id)
    form = RunChoiceForm(request.POST)
    run_id = form.cleaned_data["run"] if form.is_valid() else None
    shown = next((r for r in runs_for_prompt(prompt=prompt) if r.pk == run_id), None)
    if shown is None or shown.endpoint is None:
        return _panel(
            request, access, prompt, error="Choose a run with an endpoint to grade again."
        )
    try:
        run = run_services.run_create(
            project=access.project,
            actor=request.user,
            endpoint=shown.endpoint,
            mode=shown.mode,
            sources=shown.sources,
            prompt_ids=[prompt.pk],
            versions=Run.Versions.LATEST,
            samples=1,
            temperature=shown.temperature,
            name=f"Re-grade {prompt.external_id}"[:200],
        )
    except ApplicationError as exc:  # shown in the panel
        return _panel(request, access, prompt, run_id=shown.pk, error=exc.message)
    return _panel(request, access, prompt, run_id=run.pk)
