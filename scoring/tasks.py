"""Celery tasks: thin, ids in, one service call."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from scoring.services.coauthor import job_run


@shared_task(acks_late=True, reject_on_worker_lost=True)
def coauthor_job_run(job_id: int) -> None:
    """Safe to repeat: a redelivered job skips the items that already have a proposal
    (a unique constraint stops duplicates)."""
    job_run(job_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def score_chunk(run_id: int, index: int) -> None:
    """Safe to repeat: the chunk is claimed with a status-guarded update and judgments are
    unique by key, so a redelivered chunk judges only what is still missing."""
    from scoring.services.runs import chunk_run

    chunk_run(run_id, index)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def embed_rubric_texts(rubric_id: int, user_id: int | None) -> int:
    """Embed the texts a rubric's near-duplicate report still misses; enqueued on the ``gpu``
    queue. Safe to repeat: only missing vectors are computed and they are unique by
    (model, text)."""
    from scoring.services.duplicates import rubric_texts_embed

    return rubric_texts_embed(rubric_id=rubric_id, user_id=user_id)


@shared_task(time_limit=settings.EXPORT_TIME_LIMIT)
def export_dataset(export_id: int) -> None:
    """Write a dataset export's files. Repeat-safe: the export is claimed with a
    status-guarded update, so a second delivery finds it no longer queued and returns.
    Stopped at EXPORT_TIME_LIMIT (by a prefork pool), the bound after which the sweeper
    fails an export still marked running (``services.recovery``)."""
    from scoring.services.exports import export_run

    export_run(export_id)
