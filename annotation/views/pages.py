"""Project, prompt, import, member, account and rubric history pages."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import (
    require_GET,
    require_http_methods,
    require_POST,
    require_safe,
)
from django.views.decorators.vary import vary_on_headers

from annotation import selectors, services
from annotation.errors import ApplicationError
from annotation.models import Membership, Role, Rubric
from annotation.rubric_logic import diff_criteria
from annotation.views.editor import editor_context

PAGE_SIZE = 50


@login_required
@require_http_methods(["GET", "POST"])
def project_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        if not selectors.can_create_projects(user=request.user):
            raise PermissionDenied("Only staff users may create projects (ALLOW_PROJECT_CREATION).")
        try:
            project = services.project_create(
                name=request.POST.get("name", ""),
                slug=request.POST.get("slug", ""),
                description=request.POST.get("description", ""),
                owner=request.user,
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Project “{project.name}” created.")
            return redirect("annotation:project_detail", slug=project.slug)
    projects = selectors.projects_with_counts(user=request.user).order_by("name")[:200]
    context = {"projects": projects, "can_create": selectors.can_create_projects(user=request.user)}
    return render(request, "annotation/project_list.html", context)


@login_required
@require_safe
@vary_on_headers("HX-Request")
def project_detail(request: HttpRequest, slug: str) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug)
    filters = {
        "q": request.GET.get("q", "").strip(),
        "has_rubric": request.GET.get("has_rubric", ""),
        "rubric_status": request.GET.get("rubric_status", ""),
        "source": request.GET.get("source", ""),
    }
    prompts = selectors.prompt_list(project=project, **filters)
    page = Paginator(prompts, PAGE_SIZE).get_page(request.GET.get("page"))
    rubric_status = dict(
        Rubric.objects.filter(prompt__in=[p.pk for p in page.object_list]).values_list(
            "prompt_id", "status"
        )
    )
    for prompt in page.object_list:
        prompt.rubric_status = rubric_status.get(prompt.pk, "")
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "project": project,
        "page": page,
        "filters": filters,
        "query": query.urlencode(),
        "sources": selectors.response_sources(project=project),
        "statuses": Rubric.Status.choices,
        "counts": selectors.project_counts(project=project),
        "project_rubrics": selectors.project_wide_rubrics(project=project),
        "can_edit": selectors.role_at_least(project.user_role, Role.EDITOR),
    }
    template = "annotation/project_detail.html"
    if request.htmx and request.htmx.target == "prompt-table":
        template += "#prompt-table"
    return render(request, template, context)


@login_required
@require_GET
def prompt_detail(request: HttpRequest, slug: str, prompt_id: int) -> HttpResponse:
    """The prompt with its conversation and responses beside its rubric editor."""
    project = selectors.project_get_for_user(user=request.user, slug=slug)
    prompt = selectors.prompt_get(project=project, prompt_id=prompt_id)
    rubric = selectors.rubric_for_prompt(prompt=prompt)
    neighbours = selectors.prompt_list(project=project)
    context = editor_context(
        request, project, rubric, prompt=prompt, editing=request.GET.get("editing", "")
    )
    context.update(
        {
            "responses": prompt.responses.order_by("source", "id"),
            "project_rubrics": selectors.project_wide_criteria(project=project),
            "previous": neighbours.filter(id__lt=prompt.pk).order_by("-id").first(),
            "next": neighbours.filter(id__gt=prompt.pk).order_by("id").first(),
        }
    )
    return render(request, "annotation/prompt_detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def members_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug)
    if request.method == "POST":
        project = selectors.project_get_for_user(user=request.user, slug=slug, min_role=Role.OWNER)
        try:
            services.membership_add(
                project=project,
                actor=request.user,
                username=request.POST.get("username", ""),
                role=request.POST.get("role", Role.VIEWER),
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Member added.")
            return redirect("annotation:members", slug=slug)
    context = {
        "project": project,
        "memberships": selectors.memberships_of(project=project),
        "roles": Role.choices,
        # Owners manage members and see their e-mail addresses; the others see names only.
        "is_owner": project.user_role == Role.OWNER,
    }
    return render(request, "annotation/members.html", context)


@login_required
@require_POST
def member_update(request: HttpRequest, slug: str, membership_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, min_role=Role.OWNER)
    membership = get_object_or_404(Membership, project=project, pk=membership_id)
    try:
        if request.POST.get("action") == "remove":
            services.membership_remove(membership=membership, actor=request.user)
            messages.success(request, f"{membership.user.username} removed.")
        else:
            services.membership_set_role(
                membership=membership, actor=request.user, role=request.POST.get("role", "")
            )
            messages.success(request, f"{membership.user.username} is now {membership.role}.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("annotation:members", slug=slug)


@login_required
@require_http_methods(["GET", "POST"])
@never_cache  # the page shows the API token: no browser or proxy may keep a copy
def account_settings(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        services.api_token_rotate(user=request.user)
        messages.success(request, "A new API token was created; the old one no longer works.")
        return redirect("annotation:account")
    token = services.api_token_get_or_create(user=request.user)
    return render(request, "annotation/account.html", {"token": token.key})


@login_required
@require_safe
def rubric_history(request: HttpRequest, slug: str, rubric_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug)
    rubric = selectors.rubric_get(project=project, rubric_id=rubric_id)
    versions = list(selectors.versions_of(rubric=rubric))
    context = {
        "project": project,
        "rubric": rubric,
        "versions": versions,
        "can_edit": selectors.role_at_least(project.user_role, Role.EDITOR),
    }
    return render(request, "annotation/rubric_history.html", context)


@login_required
@require_safe
def rubric_diff(request: HttpRequest, slug: str, rubric_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug)
    rubric = selectors.rubric_get(project=project, rubric_id=rubric_id)
    current = rubric.current_version.number if rubric.current_version else 1
    try:
        a_number = int(request.GET.get("a", max(current - 1, 1)))
        b_number = int(request.GET.get("b", current))
    except ValueError:
        a_number, b_number = max(current - 1, 1), current
    a = selectors.version_get(rubric=rubric, number=a_number)
    b = selectors.version_get(rubric=rubric, number=b_number)
    changes = diff_criteria(
        selectors.version_snapshots(version_id=a.pk), selectors.version_snapshots(version_id=b.pk)
    )
    summary = {
        s: sum(c.status == s for c in changes) for s in ("added", "removed", "changed", "moved")
    }
    context = {
        "project": project,
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
    project = selectors.project_get_for_user(user=request.user, slug=slug, min_role=Role.EDITOR)
    rubric = selectors.rubric_get(project=project, rubric_id=rubric_id)
    try:
        version = services.rubric_version_restore(rubric=rubric, number=number, author=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Version {number} restored as version {version.number}.")
    return redirect("annotation:rubric_history", slug=slug, rubric_id=rubric.pk)
