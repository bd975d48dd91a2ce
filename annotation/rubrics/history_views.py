"""A rubric's history: its versions, the diff of two, and restoring an old one."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import (
    require_POST,
    require_safe,
)

from annotation.projects import selectors as project_selectors
from annotation.projects.models import Role
from annotation.rubrics import selectors as rubric_selectors
from annotation.rubrics import services as rubric_services
from annotation.rubrics.forms import DiffForm
from annotation.rubrics.logic import diff_criteria


@login_required
@require_safe
def rubric_history(request: HttpRequest, slug: str, rubric_id: int) -> HttpResponse:
    access = project_selectors.project_get_for_user(user=request.user, slug=slug)
    rubric = rubric_selectors.rubric_get(project=access.project, rubric_id=rubric_id)
    versions = list(rubric_selectors.versions_of(rubric=rubric))
    context = {
        "project": access.project,
        "access": access,
        "rubric": rubric,
        "versions": versions,
        "can_edit": access.can_edit,
    }
    return render(request, "annotation/rubric_history.html", context)


@login_required
@require_safe
def rubric_diff(request: HttpRequest, slug: str, rubric_id: int) -> HttpResponse:
    access = project_selectors.project_get_for_user(user=request.user, slug=slug)
    rubric = rubric_selectors.rubric_get(project=access.project, rubric_id=rubric_id)
    current = rubric.current_version.number if rubric.current_version else 1
    form = DiffForm(request.GET)
    chosen = form.cleaned_data if form.is_valid() else {}
    a_number = chosen.get("a") or max(current - 1, 1)
    b_number = chosen.get("b") or current
    a = rubric_selectors.version_get(rubric=rubric, number=a_number)
    b = rubric_selectors.version_get(rubric=rubric, number=b_number)
    changes = diff_criteria(
        rubric_selectors.version_snapshots(version_id=a.pk),
        rubric_selectors.version_snapshots(version_id=b.pk),
    )
    summary = {
        s: sum(c.status == s for c in changes) for s in ("added", "removed", "changed", "moved")
    }
    context = {
        "project": access.project,
        "access": access,
        "rubric": rubric,
        "a": a,
        "b": b,
        "changes": changes,
        "summary": summary,
        "numbers": list(rubric.versions.order_by("-number").values_list("number", flat=True)),
    }
    return render(request, "annotation/rubric_diff.html", context)


@login_required
@require_POST
def rubric_restore(request: HttpRequest, slug: str, rubric_id: int, number: int) -> HttpResponse:
    access = project_selectors.project_get_for_user(
        user=request.user, slug=slug, min_role=Role.EDITOR
    )
    rubric = rubric_selectors.rubric_get(project=access.project, rubric_id=rubric_id)
    version = rubric_services.rubric_version_restore(
        rubric=rubric, number=number, author=request.user
    )
    messages.success(request, f"Version {number} restored as version {version.number}.")
    return redirect("annotation:rubric_history", slug=slug, rubric_id=rubric.pk)
