"""Celery tasks: thin, ids in, one service call."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings


# celery ships no types: its decorators are untyped.
@shared_task(name="scoring.tasks.export_dataset", time_limit=settings.EXPORT_TIME_LIMIT)  # type: ignore[untyped-decorator]
def export_dataset(export_id: int) -> None:
    """Write a dataset export's files. Repeat-safe: the export is claimed with a
    status-guarded update, so a second delivery finds it no longer queued and returns.
    Stopped at EXPORT_TIME_LIMIT (by a prefork pool), the bound after which the sweeper
    fails an export still marked running (``services.recovery``)."""
    from scoring.datasets.services import export_run

    export_run(export_id)
