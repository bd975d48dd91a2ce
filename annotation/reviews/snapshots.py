"""The agreement report of a large scope (``LARGE_ITEMS`` review items or more), computed
and rendered by a worker and kept (``AgreementSnapshot``): the page shows the kept one and,
once it is older than ``FRESH``, asks the worker to compute it again (shown meanwhile). A
smaller scope's report is computed for each request, as it always was."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from annotation.projects.models import Project
from annotation.reviews import selectors as review_selectors
from annotation.reviews.agreement import agreement_report, reference_name
from annotation.reviews.models import AgreementSnapshot, ReviewQueue

LARGE_ITEMS = 2_000
FRESH = timedelta(seconds=60)
BODY = "scoring/agreement.html#report-body"


def report_context(
    *, project: Project, queue: ReviewQueue | None, queues: list[ReviewQueue]
) -> dict[str, Any]:
    """What the report's part of the page reads."""
    return {
        "project": project,
        "queue": queue,
        "queues": queues,
        "reference": reference_name(queues if queue is None else [queue]),
        "report": agreement_report(project=project, queue=queue),
    }


def is_large(queue: ReviewQueue | None, queues: list[ReviewQueue]) -> bool:
    """From the queues' item counts the page reads anyway: no query."""
    scoped = queues if queue is None else [q for q in queues if q.pk == queue.pk]
    return sum(getattr(q, "n_items", 0) for q in scoped) >= LARGE_ITEMS


def _store(
    project: Project, queue: ReviewQueue | None, queues: list[ReviewQueue]
) -> AgreementSnapshot:
    context = report_context(project=project, queue=queue, queues=queues)
    snapshot, _ = AgreementSnapshot.objects.update_or_create(
        project=project,
        scope=queue.pk if queue else 0,
        defaults={
            "html": render_to_string(BODY, context),
            "n_reviews": context["report"].n_reviews,
            "computed_at": timezone.now(),
        },
    )
    return snapshot


def snapshot_refresh(*, project_id: int, queue_id: int | None) -> None:
    """Compute and keep a large scope's report again (the worker's task; safe to repeat)."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return
    queues = review_selectors.review_queues_of(project=project)
    queue = next((q for q in queues if q.pk == queue_id), None)
    if queue_id is not None and queue is None:
        return  # the queue was deleted
    if is_large(queue, queues):
        _store(project, queue, queues)
    else:
        AgreementSnapshot.objects.filter(project=project, scope=queue_id or 0).delete()


def snapshot_for_page(
    *, project: Project, queue: ReviewQueue | None, queues: list[ReviewQueue]
) -> AgreementSnapshot | None:
    """The kept report of a large scope (computed now the first time), or None for a small
    one. A kept report older than ``FRESH`` is shown while a worker computes it again."""
    if not is_large(queue, queues):
        return None
    snapshot = AgreementSnapshot.objects.filter(
        project=project, scope=queue.pk if queue else 0
    ).first()
    if snapshot is None:
        return _store(project, queue, queues)
    if timezone.now() - snapshot.computed_at > FRESH and cache.add(
        f"agreement-refresh:{project.pk}:{snapshot.scope}", 1, int(FRESH.total_seconds())
    ):
        from annotation.reviews.tasks import agreement_refresh

        project_id, queue_id = project.pk, queue.pk if queue else None
        transaction.on_commit(lambda: agreement_refresh.delay(project_id, queue_id))
    return snapshot
