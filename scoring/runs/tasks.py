"""Celery tasks: thin, ids in, one service call. Queues come from ``CELERY_TASK_ROUTES``
(settings): ``score_chunk_local`` goes to the ``gpu`` queue, ``score_chunk`` to the default."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="scoring.tasks.score_chunk", acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]  # celery has no types
def score_chunk(run_id: int, index: int) -> None:
    """Safe to repeat: the chunk is claimed with a status-guarded update and judgments are
    unique by key, so a redelivered chunk judges only what is still missing. (Local runs'
    chunks queued on ``gpu`` under this name before ``score_chunk_local`` existed run the
    same.)"""
    from scoring.runs.chunks import chunk_run

    chunk_run(run_id, index)


@shared_task(name="scoring.tasks.score_chunk_local", acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]  # celery has no types
def score_chunk_local(run_id: int, index: int) -> None:
    """A chunk of a run judged by a local model: routed to the ``gpu`` queue, whose workers
    have torch and the model. Safe to repeat, as ``score_chunk``."""
    from scoring.runs.chunks import chunk_run

    chunk_run(run_id, index)


@shared_task(name="scoring.tasks.run_summary", acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]  # celery has no types
def run_summary(run_id: int) -> None:
    """Store what a finished run's page shows (safe to repeat: it overwrites)."""
    from scoring.runs.summary import summary_compute

    summary_compute(run_id=run_id)
