"""Unattended recovery: what a dead worker (SIGKILL, out of memory, a lost machine) left
marked as running is taken up again, or closed with its reason, without a person.

Every Celery worker runs ``stale_work_sweep`` every ``SCORING_SWEEP_INTERVAL`` seconds
(``rubricstudio/celery.py`` starts the thread when the worker is ready), so recovery needs
no extra process and goes on as long as any worker is alive. Every change is an update
guarded on the state the sweep read, so sweeps of several workers at once do each thing
once, and a requeued job is claimed again by the same status-guarded update as the first
time:

- a run's chunk whose lease (``SCORING_CHUNK_LEASE``) ran out is queued again (runs that
  are paused, cancelled or finished are left to *Resume*);
- a co-authoring job whose heartbeat is older than its lease is queued again: it is safe to
  repeat (items that have their proposals are skipped, proposals are unique; a worker that
  was only slow stops before its next chunk once another has claimed the job); a queued
  one not taken up for a lease is sent again (its message was lost);
- an export has no lease (its job writes files in one go and records no heartbeat), and
  its export task is stopped at ``EXPORT_TIME_LIMIT`` seconds: one still running that long
  after it started has lost its worker, so it fails with that reason and its partial files
  are removed (an export is not resumed: an owner starts it again);
- an import job whose worker stopped fails and its upload is removed; a queued one whose
  message was lost is sent again (``annotation.prompts.import_jobs.import_jobs_sweep``).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotation.projects.services import audit
from annotation.prompts.import_jobs import import_jobs_sweep
from scoring.coauthoring import services as coauthor_services
from scoring.coauthoring import worker as coauthor_worker
from scoring.coauthoring.models import CoauthorJob
from scoring.datasets import services as export_services
from scoring.datasets.models import Export
from scoring.runs import services as run_services

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Swept:
    chunks: int
    jobs: int
    exports: int
    imports: int


def stale_work_sweep(*, now: datetime | None = None) -> Swept:
    """One pass over runs, co-authoring jobs, exports and import jobs; safe to run from
    every worker."""
    now = now or timezone.now()
    return Swept(
        chunks=run_services.run_chunks_sweep(now=now),
        jobs=coauthor_jobs_sweep(now=now),
        exports=exports_sweep(now=now),
        imports=import_jobs_sweep(now=now),
    )


def coauthor_jobs_sweep(*, now: datetime | None = None) -> int:
    """Queue again each running job whose heartbeat ran out (``coauthor.LEASE``), and send
    again each queued one not taken up for as long (its message was lost); returns how
    many."""
    now = now or timezone.now()
    stale = Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=now - coauthor_worker.LEASE)
    requeued = 0
    running = CoauthorJob.objects.filter(stale, status=CoauthorJob.Status.RUNNING)
    for job in running.select_related("project").only("pk", "heartbeat_at", "project"):
        if CoauthorJob.objects.filter(
            pk=job.pk, status=CoauthorJob.Status.RUNNING, heartbeat_at=job.heartbeat_at
        ).update(status=CoauthorJob.Status.QUEUED, heartbeat_at=now):
            requeued += 1
            logger.warning("co-authoring job %s requeued: its heartbeat stopped", job.pk)
            audit(project=job.project, actor=None, action="coauthor.recover", target=str(job.pk))
            transaction.on_commit(partial(coauthor_services.job_send, job.pk))
    queued = CoauthorJob.objects.filter(stale, status=CoauthorJob.Status.QUEUED)
    for job in queued.only("pk", "heartbeat_at"):
        if CoauthorJob.objects.filter(
            pk=job.pk, status=CoauthorJob.Status.QUEUED, heartbeat_at=job.heartbeat_at
        ).update(heartbeat_at=now):
            requeued += 1
            logger.warning("co-authoring job %s sent to the workers again", job.pk)
            transaction.on_commit(partial(coauthor_services.job_send, job.pk))
    return requeued


def export_time_limit() -> timedelta:
    return timedelta(seconds=settings.EXPORT_TIME_LIMIT)


def exports_sweep(*, now: datetime | None = None) -> int:
    """Fail each export still running ``EXPORT_TIME_LIMIT`` after it started and remove
    what it wrote; returns how many. A job still writing it (a pool that does not enforce
    the time limit) finds the export no longer running when it ends and removes its files."""
    now = now or timezone.now()
    limit = export_time_limit()
    stale = Export.objects.filter(status=Export.Status.RUNNING).filter(
        Q(started_at__lt=now - limit) | Q(started_at__isnull=True)
    )
    reason = (
        f"Stopped unfinished: the export was still running {limit} after it started "
        f"(EXPORT_TIME_LIMIT), so its worker died or it ran past the limit. Delete it and "
        "start the export again."
    )
    failed = 0
    for export in stale.select_related("project").only("pk", "started_at", "project"):
        if Export.objects.filter(
            pk=export.pk, status=Export.Status.RUNNING, started_at=export.started_at
        ).update(status=Export.Status.FAILED, error=reason, files=[], finished_at=now):
            failed += 1
            logger.warning("export %s failed: still running after %s", export.pk, limit)
            audit(project=export.project, actor=None, action="export.recover",
                  target=str(export.pk))  # fmt: skip
            directory = export_services.export_directory(export.pk)
            transaction.on_commit(partial(shutil.rmtree, directory, ignore_errors=True))
    return failed
