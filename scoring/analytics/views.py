"""The near-duplicates panel of the rubric editor: an htmx fragment loaded by URL from the
editor (``annotation`` never imports this app). It polls while a worker embeds the
criteria it has not seen yet: every 2 s for three minutes, then every 30 s, for as long as
the panel is open. The ``gpu`` workers run one task at a time, so the embedding task may
wait behind a long scoring run's chunks; the panel says so rather than giving up.

Viewers see the warnings; editors merge a pair within the rubric (the editor beside the
panel then reloads through the ``rubric-changed`` event).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from annotation.errors import ApplicationError
from annotation.http import SignedInRequest
from annotation.projects import selectors as project_selectors
from annotation.projects.models import Role
from annotation.projects.selectors import ProjectAccess
from annotation.rubrics import selectors as rubric_selectors
from annotation.rubrics.models import Rubric
from scoring.analytics.duplicates import (
    duplicate_merge,
    duplicate_report,
    embedding_unavailable,
    embeddings_request,
)
from scoring.analytics.forms import MergeForm, PollForm

POLL_SECONDS = 2
SLOW_POLL_SECONDS = 30
SLOW_AFTER = 90  # polls (three minutes) before polling every SLOW_POLL_SECONDS
# Polls between two requests to the workers (one at the first load). The client says which
# poll it is; the service sends at most one task per rubric every 30 s whatever it says.
ASK_EVERY = 15


def _rubric(
    request: HttpRequest, slug: str, rubric_id: int, role: Role
) -> tuple[ProjectAccess, Rubric]:
    access = project_selectors.project_get_for_user(user=request.user, slug=slug, min_role=role)
    return access, rubric_selectors.rubric_get(project=access.project, rubric_id=rubric_id)


def _panel(
    request: HttpRequest,
    access: ProjectAccess,
    rubric: Rubric,
    *,
    attempt: int = 0,
    error: str = "",
) -> HttpResponse:
    project = access.project
    report = duplicate_report(project=project, rubric=rubric, user=request.user)
    if report.pending and attempt % ASK_EVERY == 0:
        embeddings_request(rubric=rubric, user=request.user)  # throttled per rubric
    unavailable = embedding_unavailable() if report.pending else None
    slow = attempt >= SLOW_AFTER
    context = {
        "project": project,
        "rubric": rubric,
        "report": report,
        "waiting": report.pending and unavailable is None,
        "unavailable": unavailable,
        "slow": slow,
        "next_attempt": attempt + 1,
        "poll_seconds": SLOW_POLL_SECONDS if slow else POLL_SECONDS,
        "can_edit": rubric.status != Rubric.Status.ARCHIVED and access.can_edit,
        "error": error,
    }
    return render(request, "scoring/_duplicates.html", context)


@login_required
@require_GET
def duplicates_panel(request: SignedInRequest, slug: str, rubric_id: int) -> HttpResponse:
    """``?attempt=N`` counts the panel's polls while vectors are missing."""
    access, rubric = _rubric(request, slug, rubric_id, Role.VIEWER)
    poll = PollForm(request.GET)
    attempt = (poll.cleaned_data["attempt"] if poll.is_valid() else None) or 0
    return _panel(request, access, rubric, attempt=attempt)


def _page_url(project: Any, rubric: Rubric) -> str:
    if rubric.prompt_id:
        return reverse("annotation:prompt_detail", args=[project.slug, rubric.prompt_id])
    return reverse("annotation:rubric_page", args=[project.slug, rubric.pk])


@login_required
@require_POST
def duplicates_merge(request: SignedInRequest, slug: str, rubric_id: int) -> HttpResponse:
    """Keep one criterion of a near-duplicate pair and remove the other from the person's
    draft. ``base`` is the version the page showed, as the editor's own forms send it (the
    panel's forms carry it too); a page gone stale changes nothing and says so."""
    access, rubric = _rubric(request, slug, rubric_id, Role.EDITOR)
    project = access.project
    form = MergeForm(request.POST)
    form.is_valid()  # every field is optional: what is unreadable is left out
    data = {name: form.cleaned_data.get(name) for name in form.fields}
    try:
        duplicate_merge(
            rubric=rubric,
            user=request.user,
            keep=data["keep"] or "",
            drop=data["drop"] or "",
            base=data["base"],
        )
    except ApplicationError as exc:  # shown in the panel, beside the pair
        if not request.htmx:
            messages.error(request, exc.message)
            return redirect(_page_url(project, rubric))
        return _panel(request, access, rubric, error=exc.message)
    notice = "Merged: one criterion removed from your draft. Save a version to keep it."
    if not request.htmx:
        messages.success(request, notice)
        return redirect(_page_url(project, rubric))
    # The editor reloads on this event, and loads a fresh panel with it.
    response = HttpResponse(status=204)
    response["HX-Trigger"] = "rubric-changed"
    return response
