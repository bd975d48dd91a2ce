"""Pages of the scoring app: judge endpoints, the co-author panel of the rubric editor (an
htmx fragment loaded by URL, so ``annotation`` never imports this app), batches and jobs.

Editors start co-authoring jobs and decide proposals; owners manage endpoints.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotation import selectors as annotation_selectors
from annotation.errors import ApplicationError
from annotation.models import PreferenceLabel, Prompt, ReviewQueue, Role
from scoring import selectors, services
from scoring.models import CoauthorJob, CoauthorSettings, JudgeEndpoint, Proposal, Run
from scoring.results import run_results
from scoring.services.endpoints import FIELDS, KEY_FIELDS

PROMPT_FILTERS = {
    "no_rubric": "Prompts without a rubric",
    "all": "All prompts",
    "with_pairs": "Prompts with a preference pair",
}
MAX_REFERENCE_UPLOAD = 1024 * 1024
ENDPOINT_CHOICES = {
    "backends": JudgeEndpoint.Backend.choices,
    "dtypes": JudgeEndpoint.Dtype.choices,
}


def _project(request: HttpRequest, slug: str, role: Role) -> Any:
    return annotation_selectors.project_get_for_user(user=request.user, slug=slug, min_role=role)


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
    is_owner = annotation_selectors.role_at_least(project.user_role, Role.OWNER)
    if request.method == "POST":
        project = _project(request, slug, Role.OWNER)
        try:
            if request.POST.get("form") == "settings":
                services.coauthor_settings_save(
                    project=project, actor=request.user, data=request.POST.dict()
                )
                messages.success(request, "Co-authoring settings saved.")
            else:
                endpoint = services.endpoint_save(
                    project=project, actor=request.user, data=_endpoint_data(request)
                )
                messages.success(request, f"Endpoint “{endpoint.name}” added.")
            return redirect("scoring:judges", slug=slug)
        except ApplicationError as exc:
            messages.error(request, exc.message)
    providers = list(selectors.providers_for(project=project))
    context = {
        "project": project,
        "endpoints": selectors.endpoints_of(project=project),
        "options": services.coauthor_settings(project),
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
    endpoint = selectors.endpoint_get(project=project, endpoint_id=endpoint_id)
    if request.method == "POST":
        try:
            if request.POST.get("action") == "delete":
                services.endpoint_delete(endpoint=endpoint, actor=request.user)
                messages.success(request, f"Endpoint “{endpoint.name}” deleted.")
            else:
                services.endpoint_save(
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
    providers = list(selectors.providers_for(project=project))
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
    endpoint = selectors.endpoint_get(project=project, endpoint_id=endpoint_id)
    try:
        result, ok = services.endpoint_test(endpoint=endpoint), True
    except ApplicationError as exc:
        result, ok = exc.message, False
    return render(request, "scoring/_test_result.html", {"result": result, "ok": ok})


# --- the co-author panel in the rubric editor ---------------------------------------------


def _panel(request: HttpRequest, project: Any, prompt: Prompt, **extra: Any) -> HttpResponse:
    jobs = selectors.jobs_for_prompt(prompt=prompt)
    proposals = list(selectors.pending_proposals(prompt=prompt))
    for proposal in proposals:
        proposal.changes = services.proposal_changes(proposal)  # type: ignore[attr-defined]
    failed = [p for job in jobs[:1] for p in job.proposals.filter(status=Proposal.Status.FAILED)]
    options = services.coauthor_settings(project)
    context = {
        "project": project,
        "prompt": prompt,
        "jobs": jobs,
        "running": any(not job.finished for job in jobs),
        "proposals": proposals,
        "failed": failed,
        "options": options,
        "endpoints": list(selectors.endpoints_of(project=project)),
        "labels": list(selectors.preference_labels(prompt=prompt)),
        "has_responses": prompt.responses.count() >= 2,
        "kinds": CoauthorJob.Kind,
        **extra,
    }
    return render(request, "scoring/_coauthor_panel.html", context)


@login_required
@require_GET
def coauthor_panel(request: HttpRequest, slug: str, prompt_id: int) -> HttpResponse:
    project = _project(request, slug, Role.EDITOR)
    prompt = annotation_selectors.prompt_get(project=project, prompt_id=prompt_id)
    return _panel(request, project, prompt)


def _reference(request: HttpRequest) -> str:
    upload = request.FILES.get("reference_file")
    if upload is None:
        return request.POST.get("reference", "")
    if upload.size and upload.size > MAX_REFERENCE_UPLOAD:
        raise ApplicationError(f"{upload.name} is larger than 1 MB.")
    try:
        return upload.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApplicationError(f"{upload.name} is not UTF-8 text.") from None


@login_required
@require_POST
def coauthor_start(request: HttpRequest, slug: str, prompt_id: int) -> HttpResponse:
    project = _project(request, slug, Role.EDITOR)
    prompt = annotation_selectors.prompt_get(project=project, prompt_id=prompt_id)
    label = request.POST.get("label", "")
    try:
        services.job_start(
            project=project,
            actor=request.user,
            kind=request.POST.get("kind", ""),
            prompt=prompt,
            label_id=int(label) if label.isascii() and label.isdigit() else None,
            reference=_reference(request),
            endpoint_id=request.POST.get("endpoint") or None,
        )
    except ApplicationError as exc:
        return _panel(request, project, prompt, error=exc.message)
    return _panel(request, project, prompt)


@login_required
@require_POST
def proposal_decide(request: HttpRequest, slug: str, proposal_id: int) -> HttpResponse:
    project = _project(request, slug, Role.EDITOR)
    proposal = selectors.proposal_get(project=project, proposal_id=proposal_id)
    decision = request.POST.get("decision", "")
    if decision not in ("accept_all", "accept_selected", "reject"):
        return HttpResponseBadRequest("decision is accept_all, accept_selected or reject.")
    accept = {"accept_all": None, "reject": []}.get(decision, request.POST.getlist("accept"))
    if decision == "accept_selected" and not accept and proposal.prompt is not None:
        return _panel(
            request, project, proposal.prompt, error="Tick the changes to accept, or Reject."
        )
    had_rubric = proposal.rubric_id is not None or (
        proposal.prompt is not None and proposal.prompt.rubrics.exists()
    )
    try:
        version = services.proposal_decide(proposal=proposal, actor=request.user, accept=accept)
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


# --- batches and jobs ---------------------------------------------------------------------


def _batch_prompts(project: Any, which: str, limit: int) -> list[Prompt]:
    prompts = Prompt.objects.filter(project=project).order_by("id")
    if which == "no_rubric":
        prompts = prompts.filter(rubrics__isnull=True)
    elif which == "with_pairs":
        prompts = prompts.filter(preference_labels__isnull=False).distinct()
    return list(prompts[:limit])


@login_required
@require_http_methods(["GET", "POST"])
def batch_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project(request, slug, Role.EDITOR)
    options = services.coauthor_settings(project)
    kind = request.POST.get("kind", CoauthorJob.Kind.DRAFT)
    which = request.POST.get("which", "no_rubric")
    try:
        limit = max(1, min(int(request.POST.get("limit", "50")), services.coauthor.MAX_BATCH))
    except ValueError:
        limit = 50
    preview = None
    error = ""
    if request.method == "POST":
        prompts = _batch_prompts(project, which, limit)
        try:
            if kind not in (CoauthorJob.Kind.DRAFT, CoauthorJob.Kind.CONTRASTIVE):
                raise ApplicationError("A batch drafts rubrics or derives contrastive ones.")
            endpoint = services.endpoint_for(project, request.POST.get("endpoint"))
            if request.POST.get("launch"):
                job = services.job_start(
                    project=project,
                    actor=request.user,
                    kind=kind,
                    prompt_ids=[p.pk for p in prompts],
                    label_ids=_first_pair_of_each(prompts),
                    endpoint_id=endpoint.pk,
                )
                return redirect("scoring:job", slug=slug, job_id=job.pk)
            preview = services.batch_preview(endpoint=endpoint, kind=kind, prompts=prompts)
        except ApplicationError as exc:
            error = exc.message
    context = {
        "project": project,
        "options": options,
        "endpoints": selectors.endpoints_of(project=project),
        "kind": kind,
        "which": which,
        "limit": limit,
        "filters": PROMPT_FILTERS,
        "preview": preview,
        "error": error,
        "jobs": CoauthorJob.objects.filter(project=project, batch=True)[:10],
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
def job_page(request: HttpRequest, slug: str, job_id: int) -> HttpResponse:
    project = _project(request, slug, Role.EDITOR)
    job = selectors.job_get(project=project, job_id=job_id)
    proposals = job.proposals.select_related("prompt").order_by("id")
    context = {"project": project, "job": job, "proposals": proposals[:500]}
    template = "scoring/job.html"
    if request.htmx:
        template += "#progress"
    return render(request, template, context)


@login_required
@require_POST
def job_cancel(request: HttpRequest, slug: str, job_id: int) -> HttpResponse:
    project = _project(request, slug, Role.EDITOR)
    job = selectors.job_get(project=project, job_id=job_id)
    services.job_cancel(job=job, actor=request.user)
    return redirect("scoring:job", slug=slug, job_id=job.pk)


# --- scoring runs -------------------------------------------------------------------------


def _run_options(request: HttpRequest) -> dict[str, Any]:
    """The run form's fields, typed; malformed numbers are clear errors."""
    post = request.POST

    def number(name: str, kind: type, default: Any = None) -> Any:
        raw = post.get(name, "").strip()
        if raw == "":
            return default
        try:
            return kind(raw)
        except ValueError:
            raise ApplicationError(f"{name.replace('_', ' ')} must be a number.") from None

    return {
        "mode": post.get("mode", Run.Mode.PER_CRITERION),
        "sources": [s for s in post.getlist("sources") if s],
        "versions": post.get("versions", Run.Versions.LATEST),
        "samples": number("samples", int, 1),
        "temperature": number("temperature", float),
        "pair_plan": post.get("pair_plan", "") if post.get("mode") == Run.Mode.PAIRWISE else "",
        "baseline_source": post.get("baseline_source", ""),
        "pairs_per_prompt": number("pairs_per_prompt", int, 3),
    }


@login_required
@require_http_methods(["GET", "POST"])
def runs_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project(request, slug, Role.VIEWER)
    can_run = annotation_selectors.role_at_least(project.user_role, Role.EDITOR)
    preview, error, options = None, "", {}
    if request.method == "POST":
        project = _project(request, slug, Role.EDITOR)
        try:
            options = _run_options(request)
            endpoint = services.endpoint_for(
                project, request.POST.get("endpoint"), generating=False
            )
            if request.POST.get("launch"):
                run = services.runs.run_create(
                    project=project,
                    actor=request.user,
                    endpoint=endpoint,
                    budget=_budget(request),
                    name=request.POST.get("name", ""),
                    **options,
                )
                return redirect("scoring:run", slug=slug, run_id=run.pk)
            options.pop("pairs_per_prompt", None)
            plan = services.runs.plan_units(
                project=project,
                endpoint=endpoint,
                pairs_per_prompt=_int(request.POST.get("pairs_per_prompt"), 3),
                prompt_ids=[],
                **options,
            )
            preview = services.runs.preview(plan, endpoint=endpoint, mode=options["mode"])
        except ApplicationError as exc:
            error = exc.message
    context = {
        "project": project,
        "can_run": can_run,
        "runs": Run.objects.filter(project=project).select_related("endpoint")[:50],
        "endpoints": selectors.endpoints_of(project=project),
        "sources": annotation_selectors.response_sources(project=project),
        "modes": Run.Mode.choices,
        "version_policies": Run.Versions.choices,
        "pair_plans": Run.PairPlan.choices,
        "preview": preview,
        "error": error,
        "post": request.POST,
        "chosen_sources": request.POST.getlist("sources"),  # a multiple choice: every value
    }
    return render(request, "scoring/runs.html", context)


def _int(value: str | None, default: int) -> int:
    return int(value) if value and value.isascii() and value.isdigit() else default


def _budget(request: HttpRequest) -> float | None:
    raw = request.POST.get("budget", "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise ApplicationError("The budget must be a number.") from None


@login_required
@require_GET
def run_page(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    project = _project(request, slug, Role.VIEWER)
    run = selectors.run_get(project=project, run_id=run_id)
    context: dict[str, Any] = {
        "project": project,
        "run": run,
        "can_run": annotation_selectors.role_at_least(project.user_role, Role.EDITOR),
        "rate": selectors.run_rate(run),
    }
    if request.htmx and request.GET.get("part") == "progress":
        return render(request, "scoring/run.html#progress", context)
    results = run_results(run)
    context["results"] = results
    context["results_loaded"] = True
    context["review_plans"] = ReviewQueue.Plan.choices
    context["chart"] = {
        "labels": [f"{i / 10:.1f}–{(i + 1) / 10:.1f}" for i in range(10)],
        "sources": [{"source": s.source, "histogram": s.histogram} for s in results.sources],
    }
    return render(request, "scoring/run.html", context)


@login_required
@require_GET
def run_response(request: HttpRequest, slug: str, run_id: int, response_id: int) -> HttpResponse:
    """One response's verdicts and explanations in a run (the expandable row)."""
    project = _project(request, slug, Role.VIEWER)
    run = selectors.run_get(project=project, run_id=run_id)
    results = run_results(run, with_verdicts=True)
    rows = [r for r in results.responses if r.response.pk == response_id]
    if not rows:
        raise Http404("This response is not in the run.")
    return render(request, "scoring/_run_response.html", {"rows": rows, "run": run})


def _int_or_none(raw: str | None, what: str) -> int | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise ApplicationError(f"{what} must be a whole number.")
    if len(raw) > 7:
        raise ApplicationError(f"{what} is at most 1,000,000.")
    return int(raw)


def _default(value: int | None, default: int) -> int:
    return default if value is None else value


@login_required
@require_POST
def run_review_queue(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    """Make a review queue of a pairwise run's pairs (editors and owners)."""
    project = _project(request, slug, Role.EDITOR)
    run = selectors.run_get(project=project, run_id=run_id)
    post = request.POST
    try:
        queue = services.queue_from_run(
            run=run,
            actor=request.user,
            name=post.get("name", ""),
            plan=post.get("plan", "all"),
            sample_size=_int_or_none(post.get("sample_size"), "k"),
            overlap=_default(_int_or_none(post.get("overlap"), "Reviewers per item"), 2),
            lock_minutes=_default(_int_or_none(post.get("lock_minutes"), "Hold minutes"), 15),
            show_sources=post.get("show_sources") == "on",
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("scoring:run", slug=slug, run_id=run.pk)
    messages.success(request, f"Review queue “{queue.name}” made with {queue.items.count()} pairs.")
    return redirect("annotation:review_queues", slug=slug)


@login_required
@require_POST
def run_control(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    project = _project(request, slug, Role.EDITOR)
    run = selectors.run_get(project=project, run_id=run_id)
    action = request.POST.get("action", "")
    try:
        if action == "pause":
            services.runs.run_pause(run=run, actor=request.user)
        elif action == "cancel":
            services.runs.run_cancel(run=run, actor=request.user)
        elif action == "resume":
            services.runs.run_resume(run=run, actor=request.user, budget=_budget(request))
        elif action == "retry_failed":
            count = services.runs.run_retry_failed(run=run, actor=request.user)
            messages.success(request, f"Judging {count} failed units again.")
        else:
            return HttpResponseBadRequest("action is pause, resume, cancel or retry_failed.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("scoring:run", slug=slug, run_id=run.pk)
