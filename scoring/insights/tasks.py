"""Celery tasks: thin, ids in, one service call."""

from __future__ import annotations

from celery import shared_task


# celery ships no types: its decorators are untyped.
@shared_task(name="scoring.tasks.run_insights", acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]
def run_insights(run_id: int) -> None:
    """Compute and store a finished run's analytics (safe to repeat: it overwrites)."""
    from scoring.insights.services import insights_compute

    insights_compute(run_id=run_id)
