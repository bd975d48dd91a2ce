"""Scoring run pages: the list with the form that starts a run (and its preview), a run's
page with progress and results, a response's verdicts, control (pause, resume, cancel,
retry) and a review queue made from a pairwise run."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotation.errors import ApplicationError
from annotation.projects import selectors as project_selectors
from annotation.projects.models import Role
from annotation.prompts import selectors as prompt_selectors
from annotation.reviews.models import ReviewQueue
from scoring.coauthoring import services as coauthor_services
from scoring.judges import selectors as judge_selectors
from scoring.judges.views import _project
from scoring.runs import planning as run_planning
from scoring.runs import review_queue
from scoring.runs import selectors as run_selectors
from scoring.runs import services as run_services
from scoring.runs.models import Run
from scoring.runs.results import run_results


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
    can_run = project_selectors.role_at_least(project.user_role, Role.EDITOR)
    preview, error, options = None, "", {}
    if request.method == "POST":
        project = _project(request, slug, Role.EDITOR)
        try:
            options = _run_options(request)
            endpoint = coauthor_services.endpoint_for(
                project, request.POST.get("endpoint"), generating=False
            )
            if request.POST.get("launch"):
                run = run_services.run_create(
                    project=project,
                    actor=request.user,
                    endpoint=endpoint,
                    budget=_budget(request),
                    name=request.POST.get("name", ""),
                    **options,
                )
                return redirect("scoring:run", slug=slug, run_id=run.pk)
            options.pop("pairs_per_prompt", None)
            plan = run_planning.plan_units(
                project=project,
                endpoint=endpoint,
                pairs_per_prompt=_int(request.POST.get("pairs_per_prompt"), 3),
                prompt_ids=[],
                **options,
            )
            preview = run_planning.preview(plan, endpoint=endpoint, mode=options["mode"])
        except ApplicationError as exc:
            error = exc.message
    context = {
        "project": project,
        "can_run": can_run,
        "runs": Run.objects.filter(project=project).select_related("endpoint")[:50],
        "endpoints": judge_selectors.endpoints_of(project=project),
        "sources": prompt_selectors.response_sources(project=project),
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
    run = run_selectors.run_get(project=project, run_id=run_id)
    context: dict[str, Any] = {
        "project": project,
        "run": run,
        "can_run": project_selectors.role_at_least(project.user_role, Role.EDITOR),
        "rate": run_selectors.run_rate(run),
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
    run = run_selectors.run_get(project=project, run_id=run_id)
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
    run = run_selectors.run_get(project=project, run_id=run_id)
    post = request.POST
    try:
        queue = review_queue.queue_from_run(
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
    run = run_selectors.run_get(project=project, run_id=run_id)
    action = request.POST.get("action", "")
    try:
        if action == "pause":
            run_services.run_pause(run=run, actor=request.user)
        elif action == "cancel":
            run_services.run_cancel(run=run, actor=request.user)
        elif action == "resume":
            run_services.run_resume(run=run, actor=request.user, budget=_budget(request))
        elif action == "retry_failed":
            count = run_services.run_retry_failed(run=run, actor=request.user)
            messages.success(request, f"Judging {count} failed units again.")
        else:
            return HttpResponseBadRequest("action is pause, resume, cancel or retry_failed.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("scoring:run", slug=slug, run_id=run.pk)
