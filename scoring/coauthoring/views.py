"""The co-author panel of the rubric editor (an htmx fragment loaded by URL, so
``annotation`` never imports this app), batches over many prompts and a job's page.

Editors start co-authoring jobs and decide proposals."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotation.errors import ApplicationError
from annotation.forms import cleaned, error_text
from annotation.http import SignedInRequest
from annotation.projects import selectors as project_selectors
from annotation.projects.models import Role
from annotation.projects.selectors import ProjectAccess
from annotation.prompts import selectors as prompt_selectors
from annotation.prompts.models import PreferenceLabel, Prompt
from scoring.coauthoring import proposals as coauthor_proposals
from scoring.coauthoring import selectors as coauthor_selectors
from scoring.coauthoring import services as coauthor_services
from scoring.coauthoring.forms import (
    PROMPT_FILTERS,
    BatchForm,
    CoauthorStartForm,
    ProposalDecisionForm,
)
from scoring.coauthoring.models import CoauthorJob, Proposal
from scoring.judges import selectors as judge_selectors
from scoring.judges.failures import explain


def _access(request: HttpRequest, slug: str) -> ProjectAccess:
    """Co-authoring is for editors and owners (others 403, outsiders 404)."""
    return project_selectors.project_get_for_user(
        user=request.user, slug=slug, min_role=Role.EDITOR
    )


MAX_REFERENCE_UPLOAD = 1024 * 1024


def _panel(request: HttpRequest, project: Any, prompt: Prompt, **extra: Any) -> HttpResponse:
    jobs = coauthor_selectors.jobs_for_prompt(prompt=prompt)
    for job in jobs:
        job.reason = explain(job.error) if job.error else None  # type: ignore[attr-defined]
    proposals = list(coauthor_selectors.pending_proposals(prompt=prompt))
    for proposal in proposals:
        proposal.changes = coauthor_proposals.proposal_changes(proposal)  # type: ignore[attr-defined]
    failed = [p for job in jobs[:1] for p in job.proposals.filter(status=Proposal.Status.FAILED)]
    options = coauthor_services.coauthor_settings(project)
    context = {
        "project": project,
        "prompt": prompt,
        "jobs": jobs,
        "running": any(not job.finished for job in jobs),
        "proposals": proposals,
        "failed": failed,
        "options": options,
        "endpoints": list(judge_selectors.endpoints_of(project=project)),
        "labels": list(coauthor_selectors.preference_labels(prompt=prompt)),
        "has_responses": prompt.responses.without_probes().count() >= 2,
        "kinds": CoauthorJob.Kind,
        **extra,
    }
    return render(request, "scoring/_coauthor_panel.html", context)


@login_required
@require_GET
def coauthor_panel(request: SignedInRequest, slug: str, prompt_id: int) -> HttpResponse:
    access = _access(request, slug)
    project = access.project
    prompt = prompt_selectors.prompt_get(project=project, prompt_id=prompt_id)
    return _panel(request, project, prompt)


def _reference(request: HttpRequest, typed: str) -> str:
    upload = request.FILES.get("reference_file")
    if upload is None:
        return typed
    if upload.size and upload.size > MAX_REFERENCE_UPLOAD:
        raise ApplicationError(f"{upload.name} is larger than 1 MB.")
    data: bytes = upload.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApplicationError(f"{upload.name} is not UTF-8 text.") from None


@login_required
@require_POST
def coauthor_start(request: SignedInRequest, slug: str, prompt_id: int) -> HttpResponse:
    access = _access(request, slug)
    project = access.project
    prompt = prompt_selectors.prompt_get(project=project, prompt_id=prompt_id)
    try:
        data = cleaned(CoauthorStartForm, request.POST)
        coauthor_services.job_start(
            project=project,
            actor=request.user,
            kind=data["kind"],
            prompt=prompt,
            label_id=data["label"],
            reference=_reference(request, data["reference"]),
            endpoint_id=data["endpoint"],
        )
    except ApplicationError as exc:
        return _panel(request, project, prompt, error=exc.message)
    return _panel(request, project, prompt)


@login_required
@require_POST
def proposal_decide(request: SignedInRequest, slug: str, proposal_id: int) -> HttpResponse:
    access = _access(request, slug)
    project = access.project
    proposal = coauthor_selectors.proposal_get(project=project, proposal_id=proposal_id)
    form = ProposalDecisionForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("decision is accept_all, accept_selected or reject.")
    accept = form.accepted()
    if form.cleaned_data["decision"] == "accept_selected" and not accept and proposal.prompt:
        return _panel(
            request, project, proposal.prompt, error="Tick the changes to accept, or Reject."
        )
    had_rubric = proposal.rubric_id is not None or (
        proposal.prompt is not None and proposal.prompt.rubrics.exists()
    )
    try:
        version = coauthor_proposals.proposal_decide(
            proposal=proposal, actor=request.user, accept=accept
        )
    except ApplicationError as exc:
        if proposal.prompt is None:
            messages.error(request, exc.message)
            return redirect("scoring:job", slug=slug, job_id=proposal.job_id)
        return _panel(request, project, proposal.prompt, error=exc.message)
    if not request.htmx or proposal.prompt is None:
        if version is not None:
            messages.success(request, f"Accepted as version {version.number}.")
        return redirect("scoring:job", slug=slug, job_id=proposal.job_id)
    notice = f"Accepted as version {version.number}." if version else "Proposal rejected."
    if version is not None and not had_rubric:
        # A first rubric: the page reloads to show its editor, with the notice on top.
        messages.success(request, notice)
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"
        return response
    response = _panel(request, project, proposal.prompt, notice=notice)
    if version is not None:
        response["HX-Trigger"] = "rubric-changed"  # the editor beside the panel reloads
    return response


def _batch_prompts(project: Any, which: str, limit: int) -> list[Prompt]:
    prompts = Prompt.objects.filter(project=project).order_by("id")
    if which == "no_rubric":
        prompts = prompts.filter(rubrics__isnull=True)
    elif which == "with_pairs":
        prompts = prompts.filter(preference_labels__isnull=False).distinct()
    return list(prompts[:limit])


@login_required
@require_http_methods(["GET", "POST"])
def batch_page(request: SignedInRequest, slug: str) -> HttpResponse:
    access = _access(request, slug)
    project = access.project
    options = coauthor_services.coauthor_settings(project)
    form = BatchForm(request.POST if request.method == "POST" else None)
    kind, which, limit = CoauthorJob.Kind.DRAFT, "no_rubric", 50
    preview = None
    error = ""
    if request.method == "POST":
        try:
            if not form.is_valid():
                raise ApplicationError(error_text(form))
            kind, which = form.cleaned_data["kind"], form.cleaned_data["which"]
            limit = min(form.cleaned_data["limit"] or 50, coauthor_services.MAX_BATCH)
            prompts = _batch_prompts(project, which, limit)
            endpoint = coauthor_services.endpoint_for(project, form.cleaned_data["endpoint"])
            if form.cleaned_data["launch"]:
                job = coauthor_services.job_start(
                    project=project,
                    actor=request.user,
                    kind=kind,
                    prompt_ids=[p.pk for p in prompts],
                    label_ids=_first_pair_of_each(prompts),
                    endpoint_id=endpoint.pk,
                )
                return redirect("scoring:job", slug=slug, job_id=job.pk)
            preview = coauthor_services.batch_preview(endpoint=endpoint, kind=kind, prompts=prompts)
        except ApplicationError as exc:
            error = exc.message
    context = {
        "project": project,
        "access": access,
        "options": options,
        "endpoints": judge_selectors.endpoints_of(project=project),
        "kind": kind,
        "which": which,
        "limit": limit,
        "filters": PROMPT_FILTERS,
        "preview": preview,
        "error": error,
        # Every co-authoring job of the project, batches and single prompts alike.
        "jobs": CoauthorJob.objects.filter(project=project).select_related("prompt")[:20],
    }
    return render(request, "scoring/batch.html", context)


def _first_pair_of_each(prompts: list[Prompt]) -> list[int]:
    """The first preference pair of each prompt (a contrastive batch uses one per prompt)."""
    first: dict[int, int] = {}
    pairs = PreferenceLabel.objects.filter(prompt__in=prompts).order_by("pk")
    for prompt_id, label_id in pairs.values_list("prompt_id", "pk"):
        first.setdefault(prompt_id, label_id)
    return list(first.values())


@login_required
@require_GET
def job_page(request: SignedInRequest, slug: str, job_id: int) -> HttpResponse:
    access = _access(request, slug)
    project = access.project
    job = coauthor_selectors.job_get(project=project, job_id=job_id)
    proposals = job.proposals.select_related("prompt").order_by("id")
    context = {"project": project, "access": access, "job": job, "proposals": proposals[:500]}
    template = "scoring/job.html"
    if request.htmx:
        template += "#progress"
    return render(request, template, context)


@login_required
@require_POST
def job_cancel(request: SignedInRequest, slug: str, job_id: int) -> HttpResponse:
    access = _access(request, slug)
    project = access.project
    job = coauthor_selectors.job_get(project=project, job_id=job_id)
    coauthor_services.job_cancel(job=job, actor=request.user)
    return redirect("scoring:job", slug=slug, job_id=job.pk)
