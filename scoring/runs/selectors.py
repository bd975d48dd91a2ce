"""Reads of runs, scoped through the project a view already checked access to."""

from __future__ import annotations

from datetime import datetime

from django.http import Http404
from django.utils import timezone

from annotation.projects.models import Project
from scoring.runs.models import Run


def run_get(*, project: Project, run_id: int) -> Run:
    run = Run.objects.filter(project=project, pk=run_id).select_related("endpoint").first()
    if run is None:
        raise Http404("No such run.")
    return run


def run_active_seconds(run: Run, now: datetime | None = None) -> float | None:
    """Seconds the run has been working: from its start to its end (or now), less the time
    it spent paused. None before it starts."""
    if run.started_at is None:
        return None
    end = run.finished_at or now or timezone.now()
    paused = run.paused_seconds
    if run.paused_at is not None:
        paused += max((end - run.paused_at).total_seconds(), 0.0)
    return max((end - run.started_at).total_seconds() - paused, 0.0)


def run_rate(run: Run, now: datetime | None = None) -> dict[str, float | None]:
    """Judgments made per second of active time (pauses do not count), and the seconds left
    at that rate while the run is working (none while it is paused or over)."""
    seconds = run_active_seconds(run, now)
    if seconds is None:
        return {"rate": None, "eta": None, "active": None}
    made = run.done + run.failed - run.reused
    rate = made / max(seconds, 1e-6) if made > 0 else None
    left = run.total - run.done - run.failed
    working = run.status in (Run.Status.QUEUED, Run.Status.RUNNING)
    return {"rate": rate, "eta": left / rate if rate and working else None, "active": seconds}
