"""Celery tasks: thin, ids in, one service call."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="scoring.tasks.score_chunk", acks_late=True, reject_on_worker_lost=True)
def score_chunk(run_id: int, index: int) -> None:
    """Safe to repeat: the chunk is claimed with a status-guarded update and judgments are
    unique by key, so a redelivered chunk judges only what is still missing."""
    from scoring.runs.chunks import chunk_run

    chunk_run(run_id, index)
