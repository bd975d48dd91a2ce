"""Celery tasks: thin, ids in, one service call."""

from __future__ import annotations

from celery import shared_task

from scoring.coauthoring.worker import job_run


# celery ships no types: its decorators are untyped.
@shared_task(name="scoring.tasks.coauthor_job_run", acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]
def coauthor_job_run(job_id: int) -> None:
    """Safe to repeat: a redelivered job skips the items that already have a proposal
    (a unique constraint stops duplicates)."""
    job_run(job_id)
