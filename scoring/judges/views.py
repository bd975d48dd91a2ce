"""The Judges page: a project's endpoints (owners edit them), testing a connection, and the
co-author settings."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from annotation.errors import ApplicationError
from annotation.projects import selectors as project_selectors
from annotation.projects.models import Role
from scoring.coauthoring import services as coauthor_services
from scoring.coauthoring.models import CoauthorSettings
from scoring.judges import selectors as judge_selectors
from scoring.judges import services as judge_services
from scoring.judges.models import JudgeEndpoint
from scoring.judges.services import FIELDS, KEY_FIELDS

ENDPOINT_CHOICES = {
    "backends": JudgeEndpoint.Backend.choices,
    "dtypes": JudgeEndpoint.Dtype.choices,
}


def _project(request: HttpRequest, slug: str, role: Role) -> Any:
    return project_selectors.project_get_for_user(user=request.user, slug=slug, min_role=role)


def _endpoint_data(request: HttpRequest) -> dict[str, Any]:
    """Form fields to typed values; a malformed number is a clear error, not a 500."""
    data: dict[str, Any] = {}
    numbers = {
        "temperature": float,
        "timeout": float,
        "price_input_per_m": float,
        "price_output_per_m": float,
        "max_tokens": int,
        "max_concurrency": int,
        "rpm": int,
        "tpm": int,
        "batch_tokens": int,
        "threshold": float,
    }
    for name in (*FIELDS, *KEY_FIELDS):  # a key field is refused by the service, clearly
        if name not in request.POST:
            continue
        raw = request.POST[name].strip()
        if name in numbers:
            if raw == "" and name in ("rpm", "tpm"):
                data[name] = None
                continue
            try:
                data[name] = numbers[name](raw)
            except ValueError:
                raise ApplicationError(f"{name.replace('_', ' ')} must be a number.") from None
        else:
            data[name] = raw
    return data


@login_required
@require_http_methods(["GET", "POST"])
def judges_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project(request, slug, Role.EDITOR)
    is_owner = project_selectors.role_at_least(project.user_role, Role.OWNER)
    if request.method == "POST":
        project = _project(request, slug, Role.OWNER)
        try:
            if request.POST.get("form") == "settings":
                judge_services.coauthor_settings_save(
                    project=project, actor=request.user, data=request.POST.dict()
                )
                messages.success(request, "Co-authoring settings saved.")
            else:
                endpoint = judge_services.endpoint_save(
                    project=project, actor=request.user, data=_endpoint_data(request)
                )
                messages.success(request, f"Endpoint “{endpoint.name}” added.")
            return redirect("scoring:judges", slug=slug)
        except ApplicationError as exc:
            messages.error(request, exc.message)
    providers = list(judge_selectors.providers_for(project=project))
    context = {
        "project": project,
        "endpoints": judge_selectors.endpoints_of(project=project),
        "options": coauthor_services.coauthor_settings(project),
        "styles": CoauthorSettings.Style.choices,
        **ENDPOINT_CHOICES,
        "providers": providers,
        "is_owner": is_owner,
        "values": request.POST
        if request.method == "POST"
        else {"provider": str(providers[0].pk) if providers else ""},
    }
    return render(request, "scoring/judges.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def endpoint_edit(request: HttpRequest, slug: str, endpoint_id: int) -> HttpResponse:
    project = _project(request, slug, Role.OWNER)
    endpoint = judge_selectors.endpoint_get(project=project, endpoint_id=endpoint_id)
    if request.method == "POST":
        try:
            if request.POST.get("action") == "delete":
                judge_services.endpoint_delete(endpoint=endpoint, actor=request.user)
                messages.success(request, f"Endpoint “{endpoint.name}” deleted.")
            else:
                judge_services.endpoint_save(
                    project=project,
                    actor=request.user,
                    data=_endpoint_data(request),
                    endpoint=endpoint,
                )
                messages.success(request, f"Endpoint “{endpoint.name}” saved.")
            return redirect("scoring:judges", slug=slug)
        except ApplicationError as exc:
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
            "endpoint": endpoint,
            "providers": providers,
            "values": values,
            **ENDPOINT_CHOICES,
        },
    )


@login_required
@require_POST
def endpoint_test(request: HttpRequest, slug: str, endpoint_id: int) -> HttpResponse:
    project = _project(request, slug, Role.EDITOR)
    endpoint = judge_selectors.endpoint_get(project=project, endpoint_id=endpoint_id)
    try:
        result, ok = judge_services.endpoint_test(endpoint=endpoint), True
    except ApplicationError as exc:
        result, ok = exc.message, False
    return render(request, "scoring/_test_result.html", {"result": result, "ok": ok})
