"""Import of prompts, responses, rubrics and preference labels from files.

Two passes. First the file is read and every record parsed and checked, with no
transaction and no lock, every read capped (``import_limits``, from the ``IMPORT_*``
settings); the records to write are spooled to a temporary file. Then, only if there is
something to write, the project's row is locked and the spooled records are written in one
transaction. By default the import is atomic: a file with a bad record imports nothing.
With ``skip_invalid`` the valid records are imported and the bad ones are skipped and
reported (line and reason); a skipped record leaves nothing. The records are written in
batches, one multi-row insert per table (``import_writing``). Re-importing the
same file creates nothing: prompts are matched on (project, external_id), responses on
(prompt, source, content hash), and a prompt that already has a rubric keeps it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import DatabaseError, transaction

from annotation.errors import ApplicationError
from annotation.projects.models import Project
from annotation.projects.services import audit
from annotation.prompts.import_report import ImportReport
from annotation.prompts.import_writing import (
    _BadRecord,
    _check_preference,
    _Spool,
    _storage_error,
    _StorageFailed,
    _write,
)
from annotation.prompts.importers.formats import FORMATS, detect_format, iter_records
from annotation.prompts.importers.reading import Limits
from annotation.prompts.importers.records import ImportFormatError, RecordError

# Progress: ``on_progress("parsing", lines read so far)`` at most about once a second, then
# ``on_progress("writing", records to write)`` once, before the write transaction.
Progress = Callable[[str, int], None]
PROGRESS_SECONDS = 1.0


def import_limits() -> Limits:
    """The caps every import reads under, from the ``IMPORT_*`` settings."""
    return Limits(
        max_bytes=settings.IMPORT_MAX_DECOMPRESSED_BYTES,
        max_line=settings.IMPORT_MAX_LINE_LENGTH,
        max_depth=settings.IMPORT_MAX_JSON_DEPTH,
        max_records=settings.IMPORT_MAX_RECORDS,
        max_errors=settings.IMPORT_MAX_ERRORS,
    )


class _Rollback(Exception):
    pass


class _Ticker:
    def __init__(self, on_progress: Progress | None) -> None:
        self._on_progress = on_progress
        self._last = time.monotonic()

    def __call__(self, phase: str, records: int, *, force: bool = False) -> None:
        if self._on_progress is None:
            return
        now = time.monotonic()
        if force or now - self._last >= PROGRESS_SECONDS:
            self._last = now
            self._on_progress(phase, records)


def _parse(
    *,
    path: Path,
    fmt: str,
    report: ImportReport,
    limits: Limits,
    spool: _Spool,
    tick: _Ticker,
) -> None:
    """The first pass: read and check every record; spool those to write. No transaction,
    no lock. In atomic mode nothing is spooled after the first bad record (nothing will be
    written), but the rest is still read so that every bad line is reported."""
    for item in iter_records(path, fmt, limits=limits):
        tick("parsing", item.line)
        if isinstance(item, RecordError):
            report.add_error(item.line, item.reason)
            continue
        report.records += 1
        try:
            _check_preference(item)
        except _BadRecord as exc:
            report.add_error(item.line, str(exc))
            continue
        if report.error_count and not report.skip_invalid:
            continue
        spool.add(item)


def data_import(
    *,
    project: Project,
    path: Path | str,
    fmt: str | None = None,
    actor: User | AnonymousUser | None = None,
    display_name: str | None = None,
    skip_invalid: bool = False,
    limits: Limits | None = None,
    on_progress: Progress | None = None,
    before_commit: Callable[[], None] | None = None,
) -> ImportReport:
    """Import one file into ``project``.

    Atomic by default: when the report has errors nothing was written. With
    ``skip_invalid`` the valid records are written and the bad ones are skipped, each
    listed in the report with its line and reason; a record is written whole or not at
    all (its own savepoint). Raises ApplicationError for whole-file problems (unreadable
    file, unknown or undetectable format, a cap of ``limits`` passed: the message names
    its setting), and then nothing was written in either mode.

    The file is read and checked before anything is locked; the project's row lock
    (which serialises imports into one project) is held only while writing.
    ``before_commit`` is called last inside the write transaction: raising there (an
    ApplicationError) rolls the whole write back.
    """
    path = Path(path)
    name = display_name or path.name
    limits = limits or import_limits()
    if fmt and fmt not in FORMATS:
        raise ApplicationError(f"{name}: unknown format '{fmt}'. Known: {', '.join(FORMATS)}.")
    tick = _Ticker(on_progress)
    spool = _Spool()
    try:
        fmt = fmt or detect_format(path, limits=limits)
        report = ImportReport(file=name, format=fmt, skip_invalid=skip_invalid)
        _parse(path=path, fmt=fmt, report=report, limits=limits, spool=spool, tick=tick)
        if not report.committed:
            _zero_counts(report)
            return report
        tick("writing", spool.count, force=True)
        with transaction.atomic():
            # Serialise imports into one project: check-then-create below relies on it.
            Project.objects.select_for_update().filter(pk=project.pk).first()
            _write(project=project, spool=spool, report=report, actor=actor)
            if not report.committed:
                raise _Rollback
            audit(
                project=project,
                actor=actor,
                action="data.import",
                target=name,
                **{k: v for k, v in report.as_dict().items() if isinstance(v, int)},
            )
            if before_commit is not None:
                before_commit()
    except _Rollback:
        _zero_counts(report)
    except ImportFormatError as exc:
        raise ApplicationError(f"{name}: {exc}; nothing was imported.") from exc
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise ApplicationError(f"{name}: cannot read the file ({exc}).") from exc
    except _StorageFailed as exc:
        # Validation should have caught it; if not, nothing was written (rolled back).
        raise ApplicationError(
            f"{name}: line {exc.line} could not be stored ({_storage_error(exc.error)}); "
            "nothing was imported."
        ) from exc.error
    except DatabaseError as exc:
        raise ApplicationError(
            f"{name}: could not be stored ({_storage_error(exc)}); nothing was imported."
        ) from exc
    finally:
        spool.close()
    return report


def _zero_counts(report: ImportReport) -> None:
    """After a rollback nothing was written: the report must not claim otherwise."""
    for f in fields(report):
        if f.name.endswith(("_created", "_unchanged")):
            setattr(report, f.name, 0)
