"""The Exports page of a project: the form that starts an export (editors and owners), the
list of exports with their live progress and files (viewers and up), downloads (viewers
and up, except exports that carry the judge's verdicts: editors and owners), and deletion
(owners). Outsiders get 404 everywhere.

An unfinished export's card polls its own URL every second (an htmx partial) until it is
done or failed; the rest of the page stays as it is.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from annotation.errors import ApplicationError
from annotation.forms import validated
from annotation.http import SignedInRequest
from annotation.projects import selectors as project_selectors
from annotation.projects.models import Role
from annotation.projects.selectors import ProjectAccess
from annotation.prompts import selectors as prompt_selectors
from scoring.datasets import services as export_services
from scoring.datasets.kinds.registry import KINDS
from scoring.datasets.models import Export
from scoring.datasets.options import FORMATS, ORIGINS, ExportOptions
from scoring.datasets.serializers import ExportCreateSerializer
from scoring.probes.services import KIND_LABELS

EXPORTS_PER_PAGE = 20  # newest first; older ones a page further
ORIGIN_LABELS = {
    "dataset": "Dataset labels",
    "expert": "Expert reviews",
    "judge": "Rubric judge (score margin, pairwise runs)",
}


def _access(request: HttpRequest, slug: str, role: Role) -> ProjectAccess:
    return project_selectors.project_get_for_user(user=request.user, slug=slug, min_role=role)


def options_from_form(post: QueryDict) -> ExportOptions:
    """The page's form as checked options, by the API's rules; what is wrong is one clear
    error."""
    serializer = ExportCreateSerializer.from_page(post)
    validated(serializer)
    return serializer.to_options()


def summary(options: dict[str, Any]) -> list[str]:
    """The options of an export as short phrases, for its card on the page."""
    parts = [f"{options.get('versions', 'approved')} rubric versions"]
    ratios = options.get("ratios") or [1, 0, 0]
    if ratios[0] != 1:
        parts.append("split " + " / ".join(f"{r:g}" for r in ratios))
    for name in ("tags", "sources"):
        if options.get(name):
            parts.append(f"{name}: {', '.join(options[name])}")
    if options.get("since") or options.get("until"):
        parts.append(f"prompts {options.get('since') or '…'} to {options.get('until') or '…'}")
    if options.get("exclude"):
        n = len(options["exclude"])
        parts.append(f"{n} exclusion{'s' if n != 1 else ''}")
    if options.get("kind") == "preferences":
        parts.append(
            "origins: " + ", ".join(options.get("origins") or export_services.DEFAULT_ORIGINS)
        )
        if options.get("min_agreement") is not None:
            parts.append(f"agreement ≥ {options['min_agreement']:g}")
        if options.get("consistent_only"):
            parts.append("position-consistent only")
        if options.get("min_margin"):
            parts.append(f"margin ≥ {options['min_margin']:g}")
        parts.append("conversational" if options.get("conversational", True) else "plain text")
        if options.get("margins"):
            parts.append("with margins")
    if options.get("kind") == "augmented_preferences":
        parts.append("probe kinds: " + (", ".join(options.get("probe_kinds") or []) or "all"))
        if options.get("probe_passed_only"):
            parts.append("pairs the judge passed only")
        parts.append("conversational" if options.get("conversational", True) else "plain text")
    if options.get("license"):
        parts.append(f"license: {options['license']}")
    return parts


def _card_context(access: ProjectAccess, export: Export) -> dict[str, Any]:
    export.summary = summary(export.options)  # type: ignore[attr-defined]
    # Listed for every member; files with the judge's verdicts for editors and owners.
    export.can_download = export_services.export_may_download(  # type: ignore[attr-defined]
        export=export, role=access.role
    )
    export.kind_label = KINDS.get(export.kind, export.kind)  # type: ignore[attr-defined]
    export.format_label = FORMATS.get(export.format, export.format)  # type: ignore[attr-defined]
    return {
        "project": access.project,
        "access": access,
        "export": export,
        "is_owner": access.is_owner,
    }


@login_required
@require_http_methods(["GET", "POST"])
def exports_page(request: SignedInRequest, slug: str) -> HttpResponse:
    access = _access(request, slug, Role.VIEWER)
    project = access.project
    error = ""
    if request.method == "POST":
        access.require(Role.EDITOR)
        try:
            export = export_services.export_create(
                project=project, actor=request.user, options=options_from_form(request.POST)
            )
        except ApplicationError as exc:  # shown in the form, which keeps what was typed
            error = exc.message
        else:
            messages.success(request, f"Export #{export.pk} queued.")
            return redirect(reverse("scoring:exports", args=[slug]) + f"#export-{export.pk}")
    page = Paginator(export_services.exports_of(project=project), EXPORTS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    exports = list(page.object_list)
    for export in exports:
        _card_context(access, export)
    post = request.POST if request.method == "POST" else None
    context = {
        "project": project,
        "access": access,
        "can_create": access.can_edit,
        "is_owner": access.is_owner,
        "exports": exports,
        "page": page,
        "kinds": KINDS.items(),
        "formats": FORMATS.items(),
        "origins": [(o, ORIGIN_LABELS[o]) for o in ORIGINS],
        "sources": prompt_selectors.response_sources(project=project),
        "error": error,
        "post": post,
        "checked_origins": post.getlist("origins") if post else export_services.DEFAULT_ORIGINS,
        "probe_kinds": list(KIND_LABELS.items()),
        "checked_probe_kinds": post.getlist("probe_kinds") if post else [],
        "chosen_sources": post.getlist("sources") if post else [],
    }
    return render(request, "scoring/exports.html", context)


@login_required
@require_GET
@vary_on_headers("HX-Request")
def export_card(request: SignedInRequest, slug: str, export_id: int) -> HttpResponse:
    """One export's card (the htmx poll); a plain visit goes to it on the Exports page."""
    access = _access(request, slug, Role.VIEWER)
    export = export_services.export_get(project=access.project, export_id=export_id)
    if not request.htmx:
        return redirect(reverse("scoring:exports", args=[slug]) + f"#export-{export.pk}")
    return render(request, "scoring/exports.html#export", _card_context(access, export))


@login_required
@require_GET
def export_download(request: SignedInRequest, slug: str, export_id: int, name: str) -> FileResponse:
    access = _access(request, slug, Role.VIEWER)
    export = export_services.export_get(project=access.project, export_id=export_id)
    export_services.export_check_download(export=export, role=access.role)
    path = export_services.export_file(export, name)
    return FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=export_services.download_name(export, name),
    )


@login_required
@require_POST
def export_delete(request: SignedInRequest, slug: str, export_id: int) -> HttpResponse:
    project = _access(request, slug, Role.OWNER).project
    export = export_services.export_get(project=project, export_id=export_id)
    export_services.export_delete(export=export, actor=request.user)
    messages.success(request, f"Export #{export_id} and its files deleted.")
    return redirect("scoring:exports", slug=slug)
