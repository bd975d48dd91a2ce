"""Adjudication and My work of a project's expert reviews: the pairs of a queue whose
reviewers disagreed, each with every decision and the judge's verdict, where an editor sets
the final label; and the signed-in reviewer's work per queue with their agreement with the
final labels (viewers and up).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from annotation.errors import ApplicationError
from annotation.http import SignedInRequest
from annotation.projects.models import Project, Role
from annotation.reviews import selectors as review_selectors
from annotation.reviews import services as review_services
from annotation.reviews.forms import AdjudicationForm
from annotation.reviews.models import ReviewItem, ReviewQueue
from annotation.reviews.views import _access, _explain_denial


@login_required
@require_http_methods(["GET", "POST"])
@_explain_denial
def review_adjudicate(request: SignedInRequest, slug: str, queue_id: int) -> HttpResponse:
    """Pairs whose reviewers disagreed, each with every decision and the judge's verdict;
    the adjudicator sets the final label."""
    access = _access(request, slug, Role.EDITOR)
    project = access.project
    queue = review_selectors.review_queue_get(project=project, queue_id=queue_id)
    if request.method == "POST":
        form = AdjudicationForm(request.POST)
        if not form.is_valid():
            return HttpResponseBadRequest(
                "Name the pair to adjudicate (item).", content_type="text/plain; charset=utf-8"
            )
        item = get_object_or_404(ReviewItem, queue=queue, pk=form.cleaned_data["item"])
        winner = form.cleaned_data["winner"]
        try:
            item = review_services.item_adjudicate(item=item, actor=request.user, winner=winner)
        except ApplicationError as exc:
            if request.htmx:
                context = _adjudication_context(project, queue, error=exc.message, failed=item.pk)
                card = next((i for i in context["items"] if i.pk == item.pk), None)
                if card is not None:
                    context["entry"] = card
                    return render(request, "annotation/review_adjudicate.html#entry", context)
            messages.error(request, exc.message)
            return redirect("annotation:review_adjudicate", slug=slug, queue_id=queue.pk)
        if request.htmx:
            return render(
                request,
                "annotation/review_adjudicate.html#settled",
                {"project": project, "queue": queue, "entry": item},
            )
        messages.success(request, f"Pair {item.position + 1}: final label set.")
        return redirect("annotation:review_adjudicate", slug=slug, queue_id=queue.pk)
    context = _adjudication_context(project, queue, access=access)
    return render(request, "annotation/review_adjudicate.html", context)


def _adjudication_context(project: Project, queue: ReviewQueue, **extra: Any) -> dict[str, Any]:
    items = review_selectors.items_to_adjudicate(queue=queue)
    reviews = review_selectors.reviews_of_items(items)
    for item in items:  # in the item's own terms: a and b as stored, never swapped
        item.decisions = reviews.get(item.pk, [])  # type: ignore[attr-defined]
        for review in item.decisions:  # type: ignore[attr-defined]
            # Each reviewer's rationale speaks of their own A and B: say which was which.
            review.saw = "b as A, a as B" if review.shown_swapped else "a as A, b as B"
            review.their_choice = review_selectors.shown_choice(review.winner, review.shown_swapped)
        item.sides = [("a", item.response_a), ("b", item.response_b)]  # type: ignore[attr-defined]
        item.orders = [  # type: ignore[attr-defined]
            review_selectors.judge_order_shown(o, False)
            for o in (item.judge or {}).get("orders", [])
            if isinstance(o, dict)
        ]
    context = {
        "project": project,
        "queue": queue,
        "items": items,
        "progress": review_selectors.queue_progress(queue=queue),
        "error": "",
        "failed": None,
    }
    context.update(extra)
    return context


@login_required
@require_GET
@_explain_denial
def review_mine(request: SignedInRequest, slug: str) -> HttpResponse:
    """The signed-in reviewer's work per queue and their agreement with the final labels."""
    access = _access(request, slug)
    context = {
        "project": access.project,
        "access": access,
        "work": review_selectors.my_work(project=access.project, reviewer=request.user),
        "can_review": access.can_review,
    }
    return render(request, "annotation/review_mine.html", context)
