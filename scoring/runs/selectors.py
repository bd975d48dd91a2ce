"""Reads of runs, scoped through the project a view already checked access to."""

from __future__ import annotations

from django.http import Http404

from annotation.projects.models import Project
from scoring.runs.models import Run


def run_get(*, project: Project, run_id: int) -> Run:
    run = Run.objects.filter(project=project, pk=run_id).select_related("endpoint").first()
    if run is None:
        raise Http404("No such run.")
    return run


def run_rate(run: Run) -> dict[str, float | None]:
    """Judgments per second since the run started, and the seconds left at that rate."""
    from django.utils import timezone

    if run.started_at is None:
        return {"rate": None, "eta": None}
    end = run.finished_at or timezone.now()
    seconds = max((end - run.started_at).total_seconds(), 1e-6)
    made = run.done + run.failed - run.reused
    rate = made / seconds if made > 0 else None
    left = run.total - run.done - run.failed
    return {"rate": rate, "eta": left / rate if rate and not run.finished else None}
