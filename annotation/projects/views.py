"""Project list and page, members, and the account page."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import Truncator
from django.views.decorators.cache import never_cache
from django.views.decorators.http import (
    require_http_methods,
    require_POST,
    require_safe,
)
from django.views.decorators.vary import vary_on_headers

from annotation.errors import ApplicationError
from annotation.forms import cleaned
from annotation.http import SignedInRequest
from annotation.links import links
from annotation.paging import page_of
from annotation.projects import selectors as project_selectors
from annotation.projects import services as project_services
from annotation.projects.forms import (
    AccountCreateForm,
    MemberAddForm,
    MemberUpdateForm,
    ProjectCreateForm,
    ProjectSettingsForm,
)
from annotation.projects.models import Membership, Project, Role
from annotation.prompts import selectors as prompt_selectors
from annotation.rubrics import selectors as rubric_selectors
from annotation.rubrics.models import Rubric

PAGE_SIZE = 50
COUNTED_AHEAD = 1_000


@login_required
@require_http_methods(["GET", "POST"])
def project_list(request: SignedInRequest) -> HttpResponse:
    if request.method == "POST":
        if not project_selectors.can_create_projects(user=request.user):
            raise PermissionDenied("Only staff users may create projects (ALLOW_PROJECT_CREATION).")
        try:
            data = cleaned(ProjectCreateForm, request.POST)
            project = project_services.project_create(owner=request.user, **data)
        except ApplicationError as exc:  # shown above the form, which keeps what was typed
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Project “{project.name}” created.")
            return redirect("annotation:project_detail", slug=project.slug)
    projects = project_selectors.projects_with_counts(user=request.user, limit=200)
    context = {
        "projects": projects,
        "can_create": project_selectors.can_create_projects(user=request.user),
    }
    return render(request, "annotation/project_list.html", context)


def shortened(text: str, length: int) -> str:
    """``truncatechars`` of ``text``, without walking a long text to its end: ASCII has a
    character per code point and nothing to normalize, so its first ``2 × length``
    characters decide it (anything else is read whole, as the filter reads it)."""
    head = text[: 2 * length]
    return Truncator(head if head.isascii() else text).chars(length)


@login_required
@require_safe
@vary_on_headers("HX-Request")
def project_detail(request: SignedInRequest, slug: str) -> HttpResponse:
    access = project_selectors.project_get_for_user(user=request.user, slug=slug)
    project = access.project
    filters = {
        "q": request.GET.get("q", "").strip(),
        "has_rubric": request.GET.get("has_rubric", ""),
        "rubric_status": request.GET.get("rubric_status", ""),
        "source": request.GET.get("source", ""),
    }
    prompts = prompt_selectors.prompt_list(project=project, **filters)
    # Paged by id (counted and sliced on the index), then only the page's rows are read
    # with their annotations: an OFFSET over annotated rows computes them for every row
    # it skips. A filtered or searched list is counted only to COUNTED_AHEAD rows past the
    # page ("1,050 or more").
    page = page_of(
        prompts.values_list("pk", flat=True),
        request.GET.get("page"),
        PAGE_SIZE,
        ahead=COUNTED_AHEAD if any(filters.values()) else None,
    )
    ids = list(page.object_list)
    by_id = {p.pk: p for p in prompts.filter(pk__in=ids)}
    rows = [by_id[pk] for pk in ids if pk in by_id]
    rubric_status = dict(Rubric.objects.filter(prompt__in=ids).values_list("prompt_id", "status"))
    link = links("annotation:prompt_detail", project.slug)
    for prompt in rows:
        prompt.url = link(prompt.pk)  # type: ignore[attr-defined]
        prompt.short_id = shortened(prompt.external_id, 18)  # type: ignore[attr-defined]
        prompt.preview = shortened(prompt.last_user_message, 140)  # type: ignore[attr-defined]
        status = rubric_status.get(prompt.pk, "")
        prompt.rubric_status = status  # type: ignore[attr-defined]
        prompt.rubric_status_label = Rubric.Status(status).label if status else ""  # type: ignore[attr-defined]
    page.object_list = rows  # the page's prompts, for its ids
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "project": project,
        "access": access,
        "page": page,
        "filters": filters,
        "query": query.urlencode(),
        "can_edit": access.can_edit,
    }
    template = "annotation/project_detail.html"
    if request.htmx and request.htmx.target == "prompt-table":
        return render(request, template + "#prompt-table", context)
    context.update(  # the rest of the page, which the table's htmx requests leave as it is
        {
            "sources": prompt_selectors.response_sources(project=project),
            "statuses": Rubric.Status.choices,
            "counts": project_selectors.project_counts(project=project),
            "project_rubrics": rubric_selectors.project_wide_rubrics(project=project),
        }
    )
    return render(request, template, context)


@login_required
@require_http_methods(["GET", "POST"])
def members_page(request: SignedInRequest, slug: str) -> HttpResponse:
    access = project_selectors.project_get_for_user(user=request.user, slug=slug)
    project = access.project
    new_account = None
    if request.method == "POST" and request.POST.get("form") == "account":
        access.require(Role.OWNER)
        if not settings.OWNERS_CREATE_ACCOUNTS:
            raise PermissionDenied("On this site accounts are made by the site admin.")
        try:
            data = cleaned(AccountCreateForm, request.POST)
            membership, link = project_services.account_create(
                project=project, actor=request.user, **data
            )
        except ApplicationError as exc:  # shown above the form, which keeps what was typed
            messages.error(request, exc.message)
        else:
            # Shown once, on this answer only (never stored in a message or a log).
            new_account = {"username": membership.user.username,
                           "link": request.build_absolute_uri(link)}  # fmt: skip
    elif request.method == "POST":
        access.require(Role.OWNER)
        try:
            data = cleaned(MemberAddForm, request.POST)
            project_services.membership_add(project=project, actor=request.user, **data)
        except ApplicationError as exc:  # shown above the form, which keeps what was typed
            messages.error(request, exc.message)
        else:
            messages.success(request, "Member added.")
            return redirect("annotation:members", slug=slug)
    context = {
        "project": project,
        "access": access,
        "memberships": project_selectors.memberships_of(project=project),
        "roles": Role.choices,
        # Owners manage members and see their e-mail addresses; the others see names only.
        "is_owner": access.is_owner,
        "new_account": new_account,
        "owners_create_accounts": settings.OWNERS_CREATE_ACCOUNTS,
    }
    response = render(request, "annotation/members.html", context)
    if new_account:
        response["Cache-Control"] = "no-store"  # the link is a credential
    return response


@login_required
@require_http_methods(["GET", "POST"])
def settings_page(request: SignedInRequest, slug: str) -> HttpResponse:
    """The project's settings: members read them, owners change them."""
    access = project_selectors.project_get_for_user(user=request.user, slug=slug)
    project = access.project
    if request.method == "POST":
        access.require(Role.OWNER)
        form = ProjectSettingsForm(request.POST, instance=Project.objects.get(pk=project.pk))
        if form.is_valid():
            project_services.project_settings_save(
                project=project, actor=request.user, data=form.cleaned_data
            )
            messages.success(request, "Settings saved.")
            return redirect("annotation:settings", slug=slug)
    else:
        form = ProjectSettingsForm(instance=project)
    if not access.is_owner:
        for field in form.fields.values():
            field.disabled = True
    context = {"project": project, "access": access, "form": form}
    return render(request, "annotation/settings.html", context)


@login_required
@require_POST
def member_update(request: SignedInRequest, slug: str, membership_id: int) -> HttpResponse:
    access = project_selectors.project_get_for_user(
        user=request.user, slug=slug, min_role=Role.OWNER
    )
    membership = get_object_or_404(Membership, project=access.project, pk=membership_id)
    data = cleaned(MemberUpdateForm, request.POST)
    if data["action"] == "remove":
        project_services.membership_remove(membership=membership, actor=request.user)
        messages.success(request, f"{membership.user.username} removed.")
    else:
        project_services.membership_set_role(
            membership=membership, actor=request.user, role=data["role"]
        )
        messages.success(request, f"{membership.user.username} is now {membership.role}.")
    return redirect("annotation:members", slug=slug)


@login_required
@require_http_methods(["GET", "POST"])
@never_cache  # the page shows the API token: no browser or proxy may keep a copy
def account_settings(request: SignedInRequest) -> HttpResponse:
    if request.method == "POST":
        project_services.api_token_rotate(user=request.user)
        messages.success(request, "A new API token was created; the old one no longer works.")
        return redirect("annotation:account")
    token = project_services.api_token_get_or_create(user=request.user)
    return render(request, "annotation/account.html", {"token": token.key})
