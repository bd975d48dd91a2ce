"""The Import page and an import job's card (editors and owners).

A small upload is imported within the request and its report shown at once; a larger one
becomes a job for a worker, whose card polls its own URL every second (an htmx partial,
``hx-trigger="every 1s"``) until the job is done and the card shows the report.

The upload cap (``annotation.prompts.uploads``) must be in place before anything reads the body,
and Django's CSRF check reads it: the page is ``csrf_exempt`` and runs the CSRF check
itself once the body has been read under the cap. A refused upload changes nothing.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods, require_safe
from django.views.decorators.vary import vary_on_headers

from annotation.errors import ApplicationError
from annotation.forms import cleaned
from annotation.http import SignedInRequest
from annotation.projects import selectors as project_selectors
from annotation.projects.models import Role
from annotation.projects.selectors import ProjectAccess
from annotation.prompts import import_jobs as prompt_import_jobs
from annotation.prompts.forms import ImportForm
from annotation.prompts.import_preview import upload_preview
from annotation.prompts.import_report import ImportReport
from annotation.prompts.importers.formats import FORMATS
from annotation.prompts.importers.guides import GUIDES, GUIDES_BY_KEY
from annotation.prompts.importers.reading import describe_size
from annotation.prompts.models import ImportJob
from annotation.prompts.uploads import cap_uploads

RECENT_JOBS = 10
TEMPLATE = "annotation/import.html"


def _context(
    access: ProjectAccess, job: ImportJob | None = None, error: str = ""
) -> dict[str, Any]:
    project = access.project
    report = None
    if job is not None and job.status == ImportJob.Status.DONE:
        report = ImportReport.from_dict(job.report)
    elif job is not None and job.status == ImportJob.Status.FAILED:
        error = job.error
    return {
        "project": project,
        "access": access,
        "job": job,
        "report": report,
        "error": error,
        "formats": FORMATS,
        "guides": GUIDES,
        "jobs": prompt_import_jobs.import_jobs_of(project=project)[:RECENT_JOBS],
        "max_upload": describe_size(settings.IMPORT_MAX_UPLOAD_BYTES),
    }


def _render(request: SignedInRequest, context: dict[str, Any]) -> HttpResponse:
    template = TEMPLATE + "#report" if request.htmx else TEMPLATE
    return render(request, template, context)


@csrf_exempt  # checked in _import_post, once the body has been read under the cap
@login_required
@vary_on_headers("HX-Request")
@require_http_methods(["GET", "POST"])
def import_page(request: SignedInRequest, slug: str) -> HttpResponse:
    access = project_selectors.project_get_for_user(
        user=request.user, slug=slug, min_role=Role.EDITOR
    )
    if request.method != "POST":
        return render(request, TEMPLATE, _context(access))
    cap = cap_uploads(request)
    request.FILES  # noqa: B018 (reads the body, under the cap)
    if cap.refused:  # nothing was read or done: no CSRF needed to say so
        return _render(request, _context(access, error=cap.message))
    return csrf_protect(_import_post)(request, access)


def _import_post(request: SignedInRequest, access: ProjectAccess) -> HttpResponse:
    project = access.project
    upload = request.FILES.get("file")
    if upload is None:
        return _render(request, _context(access, error="Choose a file to import."))
    try:
        options = cleaned(ImportForm, request.POST)
        if "preview" in request.POST:  # look before importing: nothing is stored or written
            preview = upload_preview(project=project, upload=upload, fmt=options["format"] or None)
            return _render(request, {**_context(access), "preview": preview})
        job = prompt_import_jobs.import_start(
            project=project,
            upload=upload,
            fmt=options["format"] or None,
            actor=request.user,
            skip_invalid=options["skip_invalid"],
        )
    except ApplicationError as exc:
        return _render(request, _context(access, error=exc.message))
    if not job.finished and not request.htmx:
        return redirect("annotation:import_job", slug=project.slug, job_id=job.pk)
    return _render(request, _context(access, job))


@login_required
@require_safe
def import_template(request: SignedInRequest, slug: str, key: str) -> HttpResponse:
    """A format's template file, to download and fill in."""
    project_selectors.project_get_for_user(user=request.user, slug=slug, min_role=Role.EDITOR)
    guide = GUIDES_BY_KEY.get(key)
    if guide is None:
        raise Http404("No such import format.")
    response = HttpResponse(guide.template(), content_type=f"{guide.content_type}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{guide.file_name}"'
    return response


@login_required
@vary_on_headers("HX-Request")
@require_safe
def import_job(request: SignedInRequest, slug: str, job_id: int) -> HttpResponse:
    """One import's card: its progress, then its report (the htmx poll), or the Import page
    showing it."""
    access = project_selectors.project_get_for_user(
        user=request.user, slug=slug, min_role=Role.EDITOR
    )
    job = prompt_import_jobs.import_job_get(project=access.project, job_id=job_id)
    return _render(request, _context(access, job))
