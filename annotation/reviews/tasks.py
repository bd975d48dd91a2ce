"""Celery tasks: thin, ids in, one service call."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="annotation.tasks.agreement_refresh", acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]  # celery has no types
def agreement_refresh(project_id: int, queue_id: int | None) -> None:
    """Compute and keep a large project's agreement report again (safe to repeat)."""
    from annotation.reviews.snapshots import snapshot_refresh

    snapshot_refresh(project_id=project_id, queue_id=queue_id)
