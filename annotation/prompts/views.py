"""A prompt's page: its conversation, responses and rubric."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import (
    require_GET,
)

from annotation.http import SignedInRequest
from annotation.projects import selectors as project_selectors
from annotation.prompts import selectors as prompt_selectors
from annotation.rubrics import selectors as rubric_selectors
from annotation.rubrics.views import editor_context


@login_required
@require_GET
def prompt_detail(request: SignedInRequest, slug: str, prompt_id: int) -> HttpResponse:
    """The prompt with its conversation and responses beside its rubric editor."""
    access = project_selectors.project_get_for_user(user=request.user, slug=slug)
    project = access.project
    prompt = prompt_selectors.prompt_get(project=project, prompt_id=prompt_id)
    rubric = rubric_selectors.rubric_for_prompt(prompt=prompt)
    previous, following = prompt_selectors.prompt_neighbours(project=project, prompt=prompt)
    context = editor_context(
        request, access, rubric, prompt=prompt, editing=request.GET.get("editing", "")
    )
    context.update(
        {
            "responses": prompt.responses.without_probes().order_by("source", "id"),
            "project_rubrics": rubric_selectors.project_wide_criteria(project=project),
            "previous": previous,
            "next": following,
        }
    )
    return render(request, "annotation/prompt_detail.html", context)
