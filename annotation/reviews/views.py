"""Expert review of pairwise judgments: the queue list (and making a queue from the
project's imported preference pairs) and the reviewing page.

Viewers may open the queue list and My work; reviewing needs the reviewer role, making a
queue and adjudicating the editor role (a member below the role gets a 403 page that says
so; an outsider a 404). A slot is only ever shown to the reviewer who holds or held it
(``review_selectors.slot_get``), and the judge's verdict is put into the page only once
that reviewer has committed (``review_selectors.item_view`` leaves it out before).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from annotation.errors import ApplicationError
from annotation.forms import cleaned, error_text
from annotation.http import SignedInRequest
from annotation.projects import selectors as project_selectors
from annotation.projects.models import Project, Role
from annotation.projects.selectors import ProjectAccess
from annotation.reviews import queues as queue_services
from annotation.reviews import selectors as review_selectors
from annotation.reviews import services as review_services
from annotation.reviews.forms import CHOICES, QUEUE_PLANS, FlagForm, QueueForm, ReviewForm
from annotation.reviews.models import ReviewQueue, ReviewSlot

QUEUE_DEFAULTS = {
    "name": "",
    "plan": ReviewQueue.Plan.ALL,
    "k": "",
    "overlap": "2",
    "lock_minutes": "15",
    "show_sources": False,
}


class _BelowRole(Exception):
    """A member below the role a review page needs (shown as a 403 page that says why)."""

    def __init__(self, access: ProjectAccess, role: Role) -> None:
        super().__init__(role)
        self.access, self.role = access, role


def _access(request: SignedInRequest, slug: str, min_role: Role = Role.VIEWER) -> ProjectAccess:
    """The project for a member (404 for an outsider), checked for ``min_role``."""
    access = project_selectors.project_get_for_user(user=request.user, slug=slug)
    if not access.at_least(min_role):
        raise _BelowRole(access, min_role)
    return access


def _project(request: SignedInRequest, slug: str, min_role: Role = Role.VIEWER) -> Project:
    return _access(request, slug, min_role).project


def _explain_denial(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except _BelowRole as exc:
            context = {
                "project": exc.access.project,
                "access": exc.access,
                "needed": Role(exc.role).label.lower(),
                "can_review": exc.access.can_review,
            }
            return render(request, "annotation/review_denied.html", context, status=403)

    return wrapper


# --- queues -------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
@_explain_denial
def review_queues(request: SignedInRequest, slug: str) -> HttpResponse:
    """The project's review queues with their progress; editors make one here from the
    project's imported preference pairs."""
    access = _access(request, slug)
    project = access.project
    values: dict[str, Any] = dict(QUEUE_DEFAULTS)
    error = ""
    status = 200
    if request.method == "POST":
        access = _access(request, slug, Role.EDITOR)
        values = {key: request.POST.get(key, "").strip() for key in QUEUE_DEFAULTS}
        values["show_sources"] = "show_sources" in request.POST
        try:
            queue = _queue_from_form(request, project, cleaned(QueueForm, request.POST))
        except ApplicationError as exc:
            error, status = exc.message, 400
        else:
            messages.success(
                request,
                f"Queue “{queue.name}” made: {queue.items.count()} pairs, "
                f"{queue.overlap} reviewer{'s' if queue.overlap != 1 else ''} each.",
            )
            return redirect("annotation:review_queues", slug=slug)
    queues = review_selectors.review_queues_of(project=project)
    for queue in queues:
        queue.progress = review_selectors.queue_progress(queue=queue)  # type: ignore[attr-defined]
    context = {
        "project": project,
        "access": access,
        "queues": queues,
        "pairs": project_selectors.project_counts(project=project)["dataset_pairs"],
        "values": values,
        "error": error,
        "plans": [(p.value, p.label) for p in QUEUE_PLANS],
        "can_create": access.can_edit,
        "can_review": access.can_review,
    }
    return render(request, "annotation/review_queues.html", context, status=status)


def _queue_from_form(
    request: SignedInRequest, project: Project, data: dict[str, Any]
) -> ReviewQueue:
    plan = data["plan"]
    labels = list(review_selectors.preference_pairs(project=project))
    if not labels:
        raise ApplicationError(
            "This project has no imported preference pairs yet: import some, then make a queue."
        )
    return queue_services.queue_from_labels(
        project=project,
        actor=request.user,
        labels=labels,
        name=data["name"],
        plan=plan,
        sample_size=data["k"] if plan != ReviewQueue.Plan.ALL else None,
        overlap=data["overlap"],
        lock_minutes=data["lock_minutes"],
        show_sources=data["show_sources"],
    )


# --- reviewing ----------------------------------------------------------------------------


@login_required
@require_GET
@_explain_denial
def review_next(request: SignedInRequest, slug: str, queue_id: int) -> HttpResponse:
    """Claim the reviewer's next pair (the one they hold, else a new one) and open it; when
    nothing is left for them, say so."""
    access = _access(request, slug, Role.REVIEWER)
    project = access.project
    queue = review_selectors.review_queue_get(project=project, queue_id=queue_id)
    slot = review_services.slot_next(queue=queue, reviewer=request.user)
    if slot is not None:
        return redirect("annotation:review_item", slug=slug, queue_id=queue.pk, slot_id=slot.pk)
    history = review_selectors.review_history(queue=queue, reviewer=request.user)
    context = {
        "project": project,
        "access": access,
        "queue": queue,
        "work": review_selectors.work_in_queue(queue=queue, reviewer=request.user),
        "previous": _item_url(project, queue, history[-1]) if history else "",
    }
    return render(request, "annotation/review_done.html", context)


def _item_url(project: Project, queue: ReviewQueue, slot_id: int) -> str:
    return reverse("annotation:review_item", args=[project.slug, queue.pk, slot_id])


def _item_context(
    request: SignedInRequest,
    access: ProjectAccess,
    queue: ReviewQueue,
    slot: ReviewSlot,
    **extra: Any,
) -> dict[str, Any]:
    project = access.project
    view = review_selectors.item_view(slot=slot)
    history = review_selectors.review_history(queue=queue, reviewer=request.user)
    previous = following = ""
    if slot.pk in history:  # committed: step through the reviewer's own decisions
        at = history.index(slot.pk)
        if at > 0:
            previous = _item_url(project, queue, history[at - 1])
        following = (
            _item_url(project, queue, history[at + 1])
            if at + 1 < len(history)
            else reverse("annotation:review_next", args=[project.slug, queue.pk])
        )
    elif history:
        previous = _item_url(project, queue, history[-1])
    # "Pair 2 of 40": this pair among the reviewer's own (decided, held and still open to them).
    position = history.index(slot.pk) + 1 if slot.pk in history else len(history) + 1
    context: dict[str, Any] = {
        "project": project,
        "access": access,
        "queue": queue,
        "view": view,
        "sides": [("A", view.left), ("B", view.right)],
        "rubric_id": view.item.rubric_version.rubric_id if view.item.rubric_version else None,
        "previous": previous,
        "next": following,
        "decided": len(history),
        "position": position,
        "of": max(
            review_selectors.pairs_for_reviewer(queue=queue, reviewer=request.user), position
        ),
        "values": {"choice": "", "rationale": "", "confidence": "", "marks": {}},
        "error": "",
        "notice": "",
        "choices": CHOICES,
        "confidences": [(1, "1 · unsure"), (2, "2"), (3, "3"), (4, "4"), (5, "5 · certain")],
    }
    context.update(extra)
    # Each criterion with the reviewer's mark being made (``value``, kept across an error)
    # or, once committed, their mark and the judge's, both as this reviewer's A / B / tie.
    judge = view.judge or {}
    context["criteria"] = [
        {
            **c,
            "value": context["values"]["marks"].get(c["key"], ""),
            "mine": judge.get("marks_shown", {}).get(c["key"], ""),
            "judge": judge.get("criteria_shown", {}).get(c["key"], ""),
        }
        for c in view.criteria
    ]
    return context


def _slot(
    request: SignedInRequest, slug: str, queue_id: int, slot_id: int
) -> tuple[ProjectAccess, ReviewQueue, ReviewSlot]:
    access = _access(request, slug, Role.REVIEWER)
    queue = review_selectors.review_queue_get(project=access.project, queue_id=queue_id)
    slot = review_selectors.slot_get(queue=queue, slot_id=slot_id, reviewer=request.user)
    return access, queue, slot


@login_required
@require_GET
@vary_on_headers("HX-Request")
@_explain_denial
def review_item(request: SignedInRequest, slug: str, queue_id: int, slot_id: int) -> HttpResponse:
    """One pair as this reviewer sees it: to decide, or (once decided) with the judge's
    verdict revealed."""
    access, queue, slot = _slot(request, slug, queue_id, slot_id)
    template = "annotation/review_item.html"
    if request.htmx:
        template += "#review"
    return render(request, template, _item_context(request, access, queue, slot))


def _respond(
    request: SignedInRequest,
    access: ProjectAccess,
    queue: ReviewQueue,
    slot: ReviewSlot,
    **extra: Any,
) -> HttpResponse:
    """The reviewing fragment for htmx; back to the page (with the message) otherwise."""
    if request.htmx:
        context = _item_context(request, access, queue, slot, **extra)
        return render(request, "annotation/review_item.html#review", context)
    if extra.get("error"):
        messages.error(request, extra["error"])
    elif extra.get("notice"):
        messages.success(request, extra["notice"])
    return redirect(_item_url(access.project, queue, slot.pk))


@login_required
@require_POST
@_explain_denial
def review_commit(request: SignedInRequest, slug: str, queue_id: int, slot_id: int) -> HttpResponse:
    """Commit the reviewer's decision (as they saw the sides); the answer reveals the
    judge's verdict."""
    access, queue, slot = _slot(request, slug, queue_id, slot_id)
    view = review_selectors.item_view(slot=slot)
    if view.review is not None:  # a second submit of the same decision
        return _respond(request, access, queue, slot, notice="Your decision was already in.")
    post = request.POST
    values = {
        "choice": post.get("choice", ""),
        "rationale": post.get("rationale", ""),
        "confidence": post.get("confidence", ""),
        "marks": {k.removeprefix("mark-"): v for k, v in post.items() if k.startswith("mark-")},
    }
    try:
        form = ReviewForm(post, criteria=[c["key"] for c in view.criteria])
        if not form.is_valid():
            raise ApplicationError(error_text(form))
        review_services.review_commit(
            slot=slot,
            reviewer=request.user,
            shown=form.cleaned_data["choice"],
            criteria=form.cleaned_data["marks"],
            rationale=form.cleaned_data["rationale"],
            confidence=form.cleaned_data["confidence"],
            seconds=form.cleaned_data["seconds"],
        )
    except ApplicationError as exc:
        return _respond(request, access, queue, slot, error=exc.message, values=values)
    return _respond(request, access, queue, slot)


@login_required
@require_POST
@_explain_denial
def review_flag(request: SignedInRequest, slug: str, queue_id: int, slot_id: int) -> HttpResponse:
    """After the reveal: the judge was wrong, or the rubric has a problem (at a criterion)."""
    access, queue, slot = _slot(request, slug, queue_id, slot_id)
    review = review_selectors.item_view(slot=slot).review
    try:
        if review is None:
            raise ApplicationError("Commit your decision first; then you may flag the judge.")
        flags = cleaned(FlagForm, request.POST)
        review_services.review_flag(
            review=review,
            reviewer=request.user,
            judge_wrong=flags["judge_wrong"],
            rubric_problem=flags["rubric_problem"],
            criterion=(flags["criterion"] or None) if flags["rubric_problem"] else None,
        )
    except ApplicationError as exc:
        return _respond(request, access, queue, slot, error=exc.message)
    return _respond(request, access, queue, slot, notice="Flags saved.")


@login_required
@require_POST
@_explain_denial
def review_undo(request: SignedInRequest, slug: str, queue_id: int) -> HttpResponse:
    """Take back the reviewer's last decision in the queue and reopen that pair."""
    project = _project(request, slug, Role.REVIEWER)
    queue = review_selectors.review_queue_get(project=project, queue_id=queue_id)
    undone = review_services.review_undo(queue=queue, reviewer=request.user)
    if undone is None:
        messages.info(request, "You have no decision in this queue to undo.")
        return redirect("annotation:review_next", slug=slug, queue_id=queue.pk)
    messages.success(request, "Your last decision was taken back: decide this pair again.")
    return redirect(_item_url(project, queue, undone.slot_id))
