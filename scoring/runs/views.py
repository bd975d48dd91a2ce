"""Scoring run pages: the list with the form that starts a run (and its preview), a run's
page with progress and results, a response's verdicts, control (pause, resume, cancel,
retry) and a review queue made from a pairwise run."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotation.errors import ApplicationError
from annotation.forms import cleaned, error_text
from annotation.http import SignedInRequest
from annotation.links import links
from annotation.projects import selectors as project_selectors
from annotation.projects.models import Role
from annotation.projects.selectors import ProjectAccess
from annotation.prompts import selectors as prompt_selectors
from annotation.reviews.models import ReviewQueue
from annotation.rubrics.models import Rubric
from scoring.coauthoring import services as coauthor_services
from scoring.judges import selectors as judge_selectors
from scoring.runs import planning as run_planning
from scoring.runs import review_queue
from scoring.runs import selectors as run_selectors
from scoring.runs import services as run_services
from scoring.runs import summary as run_summary
from scoring.runs.forms import RunControlForm, RunForm, RunQueueForm
from scoring.runs.models import Run
from scoring.runs.results import run_results
from scoring.runs.subsets import subset_prompt_ids


def _access(request: SignedInRequest, slug: str, role: Role) -> ProjectAccess:
    return project_selectors.project_get_for_user(user=request.user, slug=slug, min_role=role)


@login_required
@require_http_methods(["GET", "POST"])
def runs_page(request: SignedInRequest, slug: str) -> HttpResponse:
    access = _access(request, slug, Role.VIEWER)
    project = access.project
    preview, error, subset_size = None, "", 0
    if request.method == "POST":
        access.require(Role.EDITOR)
        try:
            form = RunForm(request.POST)
            if not form.is_valid():
                raise ApplicationError(error_text(form))
            options = form.run_options()
            prompt_ids = subset_prompt_ids(project=project, subset=form.subset())
            endpoint = coauthor_services.endpoint_for(
                project, form.cleaned_data["endpoint"], generating=False
            )
            if form.cleaned_data["launch"]:
                run = run_services.run_create(
                    project=project,
                    actor=request.user,
                    endpoint=endpoint,
                    budget=form.cleaned_data["budget"],
                    name=form.cleaned_data["name"],
                    prompt_ids=prompt_ids,
                    **options,
                )
                return redirect("scoring:run", slug=slug, run_id=run.pk)
            plan = run_planning.plan_units(
                project=project, endpoint=endpoint, prompt_ids=prompt_ids, **options
            )
            preview = run_planning.preview(plan, endpoint=endpoint, mode=options["mode"])
            subset_size = len(prompt_ids)
        except ApplicationError as exc:  # shown in the form, which keeps what was typed
            error = exc.message
    context = {
        "project": project,
        "access": access,
        "can_run": access.can_edit,
        "runs": Run.objects.filter(project=project).select_related("endpoint", "probe")[:50],
        "endpoints": judge_selectors.endpoints_of(project=project),
        "sources": prompt_selectors.response_sources(project=project),
        "modes": Run.Mode.choices,
        "version_policies": Run.Versions.choices,
        "pair_plans": Run.PairPlan.choices,
        "rubric_statuses": Rubric.Status.choices,
        "preview": preview,
        "subset_size": subset_size,
        "error": error,
        "post": request.POST,
        "chosen_sources": request.POST.getlist("sources"),  # a multiple choice: every value
    }
    return render(request, "scoring/runs.html", context)


ROWS = 100  # rows of the responses' table per request


def _int(raw: str | None, default: int, most: int) -> int:
    try:
        return max(0, min(int(raw or default), most))
    except ValueError:
        return default


@login_required
@require_GET
def run_page(request: SignedInRequest, slug: str, run_id: int) -> HttpResponse:
    access = _access(request, slug, Role.VIEWER)
    run = run_selectors.run_get(project=access.project, run_id=run_id)
    context: dict[str, Any] = {
        "project": access.project,
        "access": access,
        "run": run,
        "can_run": access.can_edit,
        "rate": run_selectors.run_rate(run),
    }
    if request.htmx and request.GET.get("part") == "progress":
        response = render(request, "scoring/run.html#progress", context)
        if run.finished:  # the results and charts come with the whole page, loaded once
            response["HX-Refresh"] = "true"
        return response
    # The run's stored summary (the first rows of each table, the counts and the charts),
    # never every judgment of a large run; None while a worker computes it. The responses'
    # table lists ROWS at a time, the next ones asked for by its "more" link (htmx).
    shown = _int(request.GET.get("rows"), ROWS, run_summary.HEAD_RESPONSES)
    start = _int(request.GET.get("from"), 0, shown) if request.htmx else 0
    results = run_summary.page_results(run, slice(start, shown))
    context["review_plans"] = ReviewQueue.Plan.choices
    if results is not None:
        prompt_link = links("annotation:prompt_detail", access.project.slug)
        verdicts_link = links("scoring:run_response", access.project.slug, run.pk)
        for row in results.responses:
            row.prompt_url = prompt_link(row.response.prompt_id)  # type: ignore[attr-defined]
            row.verdicts_url = verdicts_link(row.response.pk)  # type: ignore[attr-defined]
        listed = min(run_summary.HEAD_RESPONSES, len(results.responses))
        context.update({"rows_shown": shown, "rows_listed": listed})
        context["more_rows"] = min(shown + ROWS, listed)
        if request.htmx and request.GET.get("part") == "responses":
            return render(
                request, "scoring/run.html#response-rows", {**context, "results": results}
            )
        context["results"] = results
        context["failure_groups"] = results.failure_groups
        context["results_loaded"] = True
        context["chart"] = {
            "labels": [f"{i / 10:.1f}–{(i + 1) / 10:.1f}" for i in range(10)],
            "sources": [{"source": s.source, "histogram": s.histogram} for s in results.sources],
        }
    return render(request, "scoring/run.html", context)


@login_required
@require_GET
def run_response(
    request: SignedInRequest, slug: str, run_id: int, response_id: int
) -> HttpResponse:
    """One response's verdicts and explanations in a run (the expandable row)."""
    project = _access(request, slug, Role.VIEWER).project
    run = run_selectors.run_get(project=project, run_id=run_id)
    results = run_results(
        run,
        with_verdicts=True,
        response_ids={response_id},
        chunk_indexes=run_summary.response_chunks(run, response_id),
    )
    rows = [r for r in results.responses if r.response.pk == response_id]
    if not rows:
        raise Http404("This response is not in the run.")
    return render(request, "scoring/_run_response.html", {"rows": rows, "run": run})


@login_required
@require_POST
def run_review_queue(request: SignedInRequest, slug: str, run_id: int) -> HttpResponse:
    """Make a review queue of a pairwise run's pairs (editors and owners)."""
    project = _access(request, slug, Role.EDITOR).project
    run = run_selectors.run_get(project=project, run_id=run_id)
    queue = review_queue.queue_from_run(
        run=run, actor=request.user, **cleaned(RunQueueForm, request.POST)
    )
    messages.success(request, f"Review queue “{queue.name}” made with {queue.items.count()} pairs.")
    return redirect("annotation:review_queues", slug=slug)


@login_required
@require_POST
def run_control(request: SignedInRequest, slug: str, run_id: int) -> HttpResponse:
    project = _access(request, slug, Role.EDITOR).project
    run = run_selectors.run_get(project=project, run_id=run_id)
    form = RunControlForm(request.POST)
    if "action" in form.errors:
        return HttpResponseBadRequest("action is pause, resume, cancel or retry_failed.")
    if form.errors:
        raise ApplicationError(error_text(form))
    action = form.cleaned_data["action"]
    if action == "pause":
        run_services.run_pause(run=run, actor=request.user)
    elif action == "cancel":
        run_services.run_cancel(run=run, actor=request.user)
    elif action == "resume":
        budget = form.cleaned_data["budget"]
        run_services.run_resume(run=run, actor=request.user, budget=budget)
    else:
        count = run_services.run_retry_failed(run=run, actor=request.user)
        messages.success(request, f"Judging {count} failed units again.")
    return redirect("scoring:run", slug=slug, run_id=run.pk)
