"""Celery tasks: thin, ids in, one service call (found by the app's autodiscovery)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="annotation.tasks.import_file")  # type: ignore[untyped-decorator]  # celery has no types
def import_file(job_id: int) -> None:
    """Import a stored upload. Repeat-safe: the job is claimed with a status-guarded
    update, so a second delivery finds it no longer queued and returns."""
    from annotation.prompts.import_jobs import import_job_run

    import_job_run(job_id)
