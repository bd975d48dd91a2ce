"""The Judges page: a project's endpoints (owners edit them), testing a connection, and the
co-author settings."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from annotation.errors import ApplicationError
from annotation.forms import cleaned
from annotation.projects import selectors as project_selectors
from annotation.projects.models import Role
from annotation.projects.selectors import ProjectAccess
from scoring.coauthoring import services as coauthor_services
from scoring.coauthoring.forms import CoauthorSettingsForm
from scoring.coauthoring.models import CoauthorSettings
from scoring.judges import selectors as judge_selectors
from scoring.judges import services as judge_services
from scoring.judges.forms import EndpointActionForm, endpoint_data
from scoring.judges.models import JudgeEndpoint

ENDPOINT_CHOICES = {
    "backends": JudgeEndpoint.Backend.choices,
    "dtypes": JudgeEndpoint.Dtype.choices,
}


def judge_access(request: HttpRequest, slug: str, role: Role) -> ProjectAccess:
    return project_selectors.project_get_for_user(user=request.user, slug=slug, min_role=role)


@login_required
@require_http_methods(["GET", "POST"])
def judges_page(request: HttpRequest, slug: str) -> HttpResponse:
    access = judge_access(request, slug, Role.EDITOR)
    project = access.project
    if request.method == "POST":
        access.require(Role.OWNER)
        try:
            if request.POST.get("form") == "settings":
                coauthor_services.coauthor_settings_save(
                    project=project,
                    actor=request.user,
                    data=cleaned(CoauthorSettingsForm, request.POST),
                )
                messages.success(request, "Co-authoring settings saved.")
            else:
                endpoint = judge_services.endpoint_save(
                    project=project,
                    actor=request.user,
                    data=endpoint_data(request.POST, partial=False),
                )
                messages.success(request, f"Endpoint “{endpoint.name}” added.")
            return redirect("scoring:judges", slug=slug)
        except ApplicationError as exc:  # shown above the form, which keeps what was typed
            messages.error(request, exc.message)
    providers = list(judge_selectors.providers_for(project=project))
    context = {
        "project": project,
        "access": access,
        "endpoints": judge_selectors.endpoints_of(project=project),
        "options": coauthor_services.coauthor_settings(project),
        "styles": CoauthorSettings.Style.choices,
        **ENDPOINT_CHOICES,
        "providers": providers,
        "is_owner": access.is_owner,
        "values": request.POST
        if request.method == "POST"
        else {"provider": str(providers[0].pk) if providers else ""},
    }
    return render(request, "scoring/judges.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def endpoint_edit(request: HttpRequest, slug: str, endpoint_id: int) -> HttpResponse:
    access = judge_access(request, slug, Role.OWNER)
    project = access.project
    endpoint = judge_selectors.endpoint_get(project=project, endpoint_id=endpoint_id)
    if request.method == "POST":
        try:
            if cleaned(EndpointActionForm, request.POST)["action"] == "delete":
                judge_services.endpoint_delete(endpoint=endpoint, actor=request.user)
                messages.success(request, f"Endpoint “{endpoint.name}” deleted.")
            else:
                judge_services.endpoint_save(
                    project=project,
                    actor=request.user,
                    data=endpoint_data(request.POST, partial=True),
                    endpoint=endpoint,
                )
                messages.success(request, f"Endpoint “{endpoint.name}” saved.")
            return redirect("scoring:judges", slug=slug)
        except ApplicationError as exc:  # shown above the form
            messages.error(request, exc.message)
            endpoint.refresh_from_db()
    providers = list(judge_selectors.providers_for(project=project))
    if endpoint.provider is not None and endpoint.provider not in providers:
        providers.append(endpoint.provider)  # disabled since: still shown as the current one
    values = {"provider": str(endpoint.provider_id or ""), "backend": endpoint.backend}
    return render(
        request,
        "scoring/endpoint_edit.html",
        {
            "project": project,
            "access": access,
            "endpoint": endpoint,
            "providers": providers,
            "values": values,
            **ENDPOINT_CHOICES,
        },
    )


@login_required
@require_POST
def endpoint_test(request: HttpRequest, slug: str, endpoint_id: int) -> HttpResponse:
    project = judge_access(request, slug, Role.EDITOR).project
    endpoint = judge_selectors.endpoint_get(project=project, endpoint_id=endpoint_id)
    try:
        result, ok = judge_services.endpoint_test(endpoint=endpoint), True
    except ApplicationError as exc:
        result, ok = exc.message, False
    return render(request, "scoring/_test_result.html", {"result": result, "ok": ok})
