"""Celery tasks: thin, ids in, one service call."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="annotation.tasks.project_recount", acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]  # celery has no types
def project_recount(project_id: int) -> None:
    """Count a large project's prompts, responses… again for its pages (safe to repeat)."""
    from annotation.projects.selectors import project_counts_refresh

    project_counts_refresh(project_id=project_id)
