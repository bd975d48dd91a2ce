"""Import jobs: an upload is stored, then imported within the request when it holds little
data, or by a worker (``annotation.prompts.tasks.import_file``) with its progress on the job's row.

The stored file lives in ``MEDIA_ROOT/imports/<random>/`` until its job has run. A job is
claimed with a status-guarded update, so a redelivered task finds it no longer queued and
does nothing. While it runs, a thread of the worker beats its heartbeat every
``HEARTBEAT``; the workers' recovery sweep (``import_jobs_sweep``) fails a job whose
heartbeat stopped for ``LEASE`` (its worker died: out of memory, killed, a lost machine) and
removes its upload. Such a job wrote nothing, since the write is one transaction whose last
statement checks that the job was not failed meanwhile. A job is not started again on its
own: a file that killed one worker would kill the next. A queued job whose message was lost
(the broker was down when it was sent) is sent again after ``LEASE``, and fails after
``QUEUE_TIMEOUT`` with no worker taking it.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.uploadedfile import UploadedFile
from django.db import DatabaseError, transaction
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.text import get_valid_filename

from annotation.errors import ApplicationError, check_text
from annotation.heartbeat import Heartbeat
from annotation.projects.models import Project
from annotation.projects.selectors import project_counts_refresh
from annotation.prompts.importers.formats import FORMATS
from annotation.prompts.importers.reading import describe_size, holds_at_most
from annotation.prompts.models import ImportJob
from annotation.prompts.services import data_import
from annotation.prompts.tasks import import_file

logger = logging.getLogger(__name__)

MAX_ERROR = 2_000
UPLOAD_FOLDER = "imports"
HEARTBEAT = timedelta(seconds=30)
LEASE = timedelta(minutes=5)
QUEUE_TIMEOUT = timedelta(days=1)
STOPPED = (
    "{name}: the worker importing it stopped (it ran out of memory, was killed or its "
    "machine was lost); nothing was imported. Import the file again, or split it."
)


class UploadTooLarge(ApplicationError):
    status_code = 413


def upload_too_large_message() -> str:
    cap = settings.IMPORT_MAX_UPLOAD_BYTES
    return (
        f"The upload is larger than {describe_size(cap)}, the cap IMPORT_MAX_UPLOAD_BYTES; "
        "nothing was imported."
    )


# --- reads (scoped by the project a view already checked access to) ----------------------


def import_jobs_of(*, project: Project) -> QuerySet[ImportJob]:
    return ImportJob.objects.filter(project=project).select_related("created_by")


def import_job_get(*, project: Project, job_id: int) -> ImportJob:
    job = import_jobs_of(project=project).filter(pk=job_id).first()
    if job is None:
        raise Http404("No such import.")
    return job


# --- writes ------------------------------------------------------------------------------


def _store(upload: UploadedFile[bytes]) -> tuple[str, int]:
    """Copy the upload under MEDIA_ROOT; returns its path there and its size. Refuses
    one over IMPORT_MAX_UPLOAD_BYTES as it goes (a handler may not have capped it)."""
    try:
        name = get_valid_filename(Path(upload.name or "").name)[-100:]
    except SuspiciousFileOperation:  # nothing usable left of the name
        name = "upload"
    relative = Path(UPLOAD_FOLDER) / uuid.uuid4().hex / name
    target = Path(settings.MEDIA_ROOT) / relative
    target.parent.mkdir(parents=True)
    size = 0
    try:
        with target.open("wb") as out:
            for chunk in upload.chunks():
                size += len(chunk)
                if size > settings.IMPORT_MAX_UPLOAD_BYTES:
                    raise UploadTooLarge(upload_too_large_message())
                out.write(chunk)
    except BaseException:
        shutil.rmtree(target.parent, ignore_errors=True)
        raise
    return str(relative), size


def _inline(path: Path, size: int) -> bool:
    cap = settings.IMPORT_INLINE_MAX_BYTES
    return cap > 0 and size <= cap and holds_at_most(path, cap)


def import_start(
    *,
    project: Project,
    upload: UploadedFile[bytes],
    actor: User | AnonymousUser | None,
    fmt: str | None = None,
    skip_invalid: bool = False,
) -> ImportJob:
    """Store ``upload`` and record its import job. A file holding at most
    IMPORT_INLINE_MAX_BYTES of data (decompressed) is imported now and its job comes back
    finished; a larger one is queued for a worker once the caller's transaction commits
    (call this outside a transaction: the inline import takes its own)."""
    file_name = check_text(upload.name or "upload", "The file name")[:255]
    if fmt and fmt not in FORMATS:
        raise ApplicationError(f"{file_name}: unknown format '{fmt}'. Known: {', '.join(FORMATS)}.")
    if upload.size is not None and upload.size > settings.IMPORT_MAX_UPLOAD_BYTES:
        raise UploadTooLarge(upload_too_large_message())
    try:
        stored, size = _store(upload)
    except OSError as exc:
        logger.exception("Could not store an upload for import")
        raise ApplicationError(
            f"{file_name}: the upload could not be stored ({exc.strerror or type(exc).__name__})."
        ) from exc
    try:
        job = ImportJob.objects.create(
            project=project,
            created_by=actor if actor is not None and actor.is_authenticated else None,
            file_name=file_name,
            stored_path=stored,
            size=size,
            format=fmt or "",
            skip_invalid=skip_invalid,
            heartbeat_at=timezone.now(),  # not stale to the sweep while it is decided below
        )
    except BaseException:
        _remove_upload(stored)
        raise
    if _inline(Path(settings.MEDIA_ROOT) / stored, size):
        import_job_run(job.pk)
        job.refresh_from_db()
    else:
        _enqueue(job)
    return job


def _enqueue(job: ImportJob) -> None:
    job_id = job.pk
    ImportJob.objects.filter(pk=job_id).update(heartbeat_at=timezone.now())
    transaction.on_commit(lambda: _send(job_id))


def _send(job_id: int) -> None:
    """Send the job to the workers; when the broker cannot take it now the job stays queued
    and the recovery sweep sends it again."""

    try:
        import_file.apply_async((job_id,), queue=settings.CELERY_TASK_DEFAULT_QUEUE)
    except Exception:
        logger.exception(
            "Import job %s could not be sent to the workers; it will be resent", job_id
        )


def import_job_run(job_id: int) -> None:
    """The job: import the stored file (``data_import``: read and check with no lock, then
    write in one transaction), record the report or the reason it failed, and remove the
    stored file. Runs outside a transaction, so its progress is seen as it happens."""
    now = timezone.now()
    running = (ImportJob.Status.PARSING, ImportJob.Status.WRITING)
    claimed = ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.QUEUED).update(
        status=ImportJob.Status.PARSING, started_at=now, heartbeat_at=now
    )
    if claimed != 1:
        return
    job = ImportJob.objects.select_related("project", "created_by").get(pk=job_id)
    try:
        with Heartbeat(ImportJob, job_id, running, HEARTBEAT.total_seconds()):
            _import(job)
    finally:
        _remove_upload(job.stored_path)


def _import(job: ImportJob) -> None:
    unfinished = ImportJob.objects.filter(
        pk=job.pk, status__in=(ImportJob.Status.PARSING, ImportJob.Status.WRITING)
    )

    def progress(phase: str, lines: int) -> None:
        # Bookkeeping only (outside any transaction): a database busy with another write
        # (SQLite) must not stop the import.
        try:
            unfinished.update(status=phase, lines_read=lines, heartbeat_at=timezone.now())
        except DatabaseError:
            logger.warning("import job %s: progress not recorded", job.pk)

    def still_ours() -> None:
        # The write's last statement: a job the sweep failed meanwhile writes nothing.
        if not unfinished.update(heartbeat_at=timezone.now()):
            raise ApplicationError(STOPPED.format(name=job.file_name))

    try:
        if not job.stored_path:
            raise ApplicationError(f"{job.file_name}: the uploaded file is gone.")
        report = data_import(
            project=job.project,
            path=Path(settings.MEDIA_ROOT) / job.stored_path,
            fmt=job.format or None,
            actor=job.created_by,
            display_name=job.file_name,
            skip_invalid=job.skip_invalid,
            on_progress=progress,
            before_commit=still_ours,
        )
    except Exception as exc:
        if isinstance(exc, ApplicationError):
            message = exc.message
        else:
            logger.exception("Import job %s failed", job.pk)
            message = (
                f"{job.file_name}: the import stopped on an unexpected error "
                f"({type(exc).__name__}); nothing was imported."
            )
        unfinished.update(
            status=ImportJob.Status.FAILED,
            error=message[:MAX_ERROR],
            stored_path="",
            finished_at=timezone.now(),
        )
        if not isinstance(exc, ApplicationError):
            raise
    else:
        unfinished.update(
            status=ImportJob.Status.DONE,
            report=report.as_dict(),
            lines_read=report.records + report.error_count,
            stored_path="",
            finished_at=timezone.now(),
        )
        # a large project's stored counts (the project and review pages) show the new rows
        project_counts_refresh(project_id=job.project_id)


def import_jobs_sweep(*, now: datetime | None = None) -> int:
    """Fail each running job whose heartbeat stopped for ``LEASE`` and remove its upload;
    send again each queued job not taken up for ``LEASE``, and fail one still queued after
    ``QUEUE_TIMEOUT``. Every change is guarded on what was read, so sweeps of several
    workers at once do each thing once. Returns how many jobs it failed or resent."""
    now = now or timezone.now()
    stale = Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=now - LEASE)
    changed = 0
    running = ImportJob.objects.filter(
        stale, status__in=(ImportJob.Status.PARSING, ImportJob.Status.WRITING)
    )
    for job in running.only("pk", "status", "heartbeat_at", "file_name", "stored_path"):
        if _fail(job, STOPPED.format(name=job.file_name), now):
            changed += 1
            logger.warning("import job %s failed: its worker stopped", job.pk)
    queued = ImportJob.objects.filter(stale, status=ImportJob.Status.QUEUED)
    for job in queued.only(
        "pk", "status", "heartbeat_at", "created_at", "file_name", "stored_path"
    ):
        if job.created_at < now - QUEUE_TIMEOUT:
            message = (
                f"{job.file_name}: no worker took the import up in {QUEUE_TIMEOUT.days} day; "
                "nothing was imported. Check that a worker is running, then import it again."
            )
            if _fail(job, message, now):
                changed += 1
                logger.warning("import job %s failed: still queued", job.pk)
        elif ImportJob.objects.filter(
            pk=job.pk, status=ImportJob.Status.QUEUED, heartbeat_at=job.heartbeat_at
        ).update(heartbeat_at=now):
            changed += 1
            logger.warning("import job %s sent to the workers again", job.pk)
            transaction.on_commit(partial(_send, job.pk))
    return changed


def _fail(job: ImportJob, message: str, now: datetime) -> bool:
    if not ImportJob.objects.filter(
        pk=job.pk, status=job.status, heartbeat_at=job.heartbeat_at
    ).update(
        status=ImportJob.Status.FAILED, error=message[:MAX_ERROR], stored_path="", finished_at=now
    ):
        return False
    transaction.on_commit(partial(_remove_upload, job.stored_path))
    return True


def _remove_upload(stored_path: str) -> None:
    """Delete a stored upload's folder (``imports/<random>/``), and nothing else."""
    if not stored_path:
        return
    root = (Path(settings.MEDIA_ROOT) / UPLOAD_FOLDER).resolve()
    folder = (Path(settings.MEDIA_ROOT) / stored_path).resolve().parent
    if folder.parent == root:
        shutil.rmtree(folder, ignore_errors=True)
