"""The agreement page of a project (judge against reviewers, reviewers among themselves,
trends across rubric and template versions) and its CSV of every review. Viewers and up;
``?queue=<id>`` narrows both to one of the project's review queues."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from annotation.projects import selectors as project_selectors
from annotation.projects.models import Role
from annotation.projects.selectors import ProjectAccess
from annotation.reviews import selectors as review_selectors
from annotation.reviews import snapshots
from annotation.reviews.agreement_rows import CSV_HEADER, review_rows
from annotation.reviews.forms import QueueChoiceForm
from annotation.reviews.models import ReviewQueue
from annotation.spreadsheets import csv_cell


def _scope(
    request: HttpRequest, slug: str, min_role: Role = Role.VIEWER
) -> tuple[ProjectAccess, ReviewQueue | None]:
    access = project_selectors.project_get_for_user(user=request.user, slug=slug, min_role=min_role)
    form = QueueChoiceForm(request.GET)
    if not form.is_valid():
        raise Http404("No such review queue in this project.")
    queue_id = form.cleaned_data["queue"]
    if queue_id is None:
        return access, None
    return access, review_selectors.review_queue_get(project=access.project, queue_id=queue_id)


@login_required
@require_GET
def agreement_page(request: HttpRequest, slug: str) -> HttpResponse:
    access, queue = _scope(request, slug)
    project = access.project
    queues = list(review_selectors.review_queues_of(project=project))
    context: dict[str, Any] = {
        "project": project,
        "access": access,
        "queue": queue,
        "queues": queues,
        # Per-item judge verdicts would unblind reviewers: the CSV is for editors and owners.
        "can_download": access.can_edit,
    }
    snapshot = snapshots.snapshot_for_page(project=project, queue=queue, queues=queues)
    if snapshot is None:
        context.update(snapshots.report_context(project=project, queue=queue, queues=queues))
    else:  # a large project's report, as a worker computed and rendered it
        context.update(
            {
                "report_html": mark_safe(snapshot.html),  # noqa: S308 - our own template's output
                "report_n_reviews": snapshot.n_reviews,
                "report_at": snapshot.computed_at,
            }
        )
    return render(request, "scoring/agreement.html", context)


class _Line:
    """A file-like that hands back what csv.writer writes (one line at a time)."""

    def write(self, text: str) -> str:
        return text


def _csv_lines(rows: Iterable[tuple[Any, ...]]) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield writer.writerow(CSV_HEADER)
    for row in rows:
        yield writer.writerow([csv_cell(v) for v in row])


@login_required
@require_GET
def agreement_csv(request: HttpRequest, slug: str) -> StreamingHttpResponse:
    access, queue = _scope(request, slug, Role.EDITOR)
    project = access.project
    name = f"{project.slug}-reviews" + (f"-queue-{queue.pk}" if queue else "") + ".csv"
    response = StreamingHttpResponse(
        _csv_lines(review_rows(project=project, queue=queue)), content_type="text/csv"
    )
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
