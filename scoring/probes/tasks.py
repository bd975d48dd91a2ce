"""Celery tasks: thin, ids in, one service call."""

from __future__ import annotations

from celery import shared_task


# celery ships no types: its decorators are untyped.
@shared_task(name="scoring.tasks.probe_advance", acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]
def probe_advance(probe_id: int) -> None:
    """Move a probe on once its run is done: the causal rewrites, then the report. Safe to
    repeat (see ``services.advance``)."""
    from scoring.probes.services import advance

    advance(probe_id)
