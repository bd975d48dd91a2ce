"""Import of prompts, responses, rubrics and preference labels from files.

Two passes. First the file is read and every record parsed and checked, with no
transaction and no lock, every read capped (``import_limits``, from the ``IMPORT_*``
settings); the records to write are spooled to a temporary file. Then, only if there is
something to write, the project's row is locked and the spooled records are written in one
transaction. By default the import is atomic: a file with a bad record imports nothing.
With ``skip_invalid`` each record is written in its own savepoint: the valid records are
imported and the bad ones are skipped and reported (line and reason). Re-importing the
same file creates nothing: prompts are matched on (project, external_id), responses on
(prompt, source, content hash), and a prompt that already has a rubric keeps it.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db import DatabaseError, transaction

from annotation.errors import ApplicationError
from annotation.projects.models import Project
from annotation.projects.services import audit
from annotation.prompts.importers.formats import FORMATS, detect_format, iter_records
from annotation.prompts.importers.parsers import RUBRIC_ITEMS_KEY
from annotation.prompts.importers.reading import Limits
from annotation.prompts.importers.records import ImportFormatError, ParsedRecord, RecordError
from annotation.prompts.models import PreferenceLabel, Prompt, Response, content_hash
from annotation.rubrics.models import Rubric
from annotation.rubrics.services import CriterionInput, rubric_create


@dataclass
class ImportReport:
    file: str
    format: str
    skip_invalid: bool = False
    records: int = 0
    prompts_created: int = 0
    prompts_unchanged: int = 0
    responses_created: int = 0
    responses_unchanged: int = 0
    rubrics_created: int = 0
    rubrics_unchanged: int = 0
    criteria_created: int = 0
    preference_labels_created: int = 0
    preference_labels_unchanged: int = 0
    error_count: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The file had no bad record."""
        return self.error_count == 0

    @property
    def committed(self) -> bool:
        """The valid records were written: always in skip-invalid mode, else only when the
        file had no bad record."""
        return self.ok or self.skip_invalid

    @property
    def skipped(self) -> int:
        """Bad records left out of a skip-invalid import (their lines are in ``errors``)."""
        return self.error_count if self.skip_invalid else 0

    @property
    def changed(self) -> bool:
        return any(
            (
                self.prompts_created,
                self.responses_created,
                self.rubrics_created,
                self.preference_labels_created,
            )
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "ok": self.ok,
            "committed": self.committed,
            "skipped": self.skipped,
            "unchanged": self.committed and not self.changed,
        }

    def add_error(self, line: int, reason: str) -> None:
        self.error_count += 1
        if len(self.errors) < settings.IMPORT_MAX_REPORTED_ERRORS:
            self.errors.append({"line": line, "reason": reason})

    def add_counts(self, counts: Counter[str]) -> None:
        for name, n in counts.items():
            setattr(self, name, getattr(self, name) + n)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImportReport:
        """The report of ``as_dict`` (as an import job keeps it)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


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


class _StorageFailed(Exception):
    """Atomic mode: the database refused a record (the transaction is rolled back)."""

    def __init__(self, line: int, error: DatabaseError) -> None:
        super().__init__(line)
        self.line = line
        self.error = error


class _BadRecord(Exception):
    """A record that parsed but cannot be stored here; the message is the reason."""


def _canonical(messages: list[dict[str, Any]]) -> str:
    return json.dumps(messages, sort_keys=True, ensure_ascii=False)


def _check_preference(record: ParsedRecord) -> None:
    """Refuse a pair that would name one response twice, before anything is written."""
    if record.preference is None:
        return
    chosen, rejected = (record.responses[i] for i in record.preference)
    if (chosen.source, chosen.content) == (rejected.source, rejected.content):
        raise _BadRecord("chosen and rejected responses are identical")


def _import_record(
    *,
    project: Project,
    record: ParsedRecord,
    report: ImportReport,
    actor,  # type: ignore[no-untyped-def]
) -> Counter[str]:
    """Write one record; returns what it created or found unchanged (the caller adds it to
    the report once the record is through). Raises _BadRecord before writing anything."""
    counts: Counter[str] = Counter()
    _check_preference(record)
    prompt = Prompt.objects.filter(project=project, external_id=record.external_id).first()
    prompt_created = prompt is None
    if prompt is None:
        prompt = Prompt.objects.create(
            project=project,
            external_id=record.external_id,
            messages=record.messages,
            reference_answer=record.reference_answer,
            metadata=record.metadata,
        )
        counts["prompts_created"] += 1
    elif _canonical(prompt.messages) != _canonical(record.messages):
        raise _BadRecord(
            f"prompt '{record.external_id}' already exists in this project with different messages"
        )
    else:
        counts["prompts_unchanged"] += 1

    responses: list[Response] = []
    for parsed in record.responses:
        digest = content_hash(parsed.content)
        response = Response.objects.filter(
            prompt=prompt, source=parsed.source, content_hash=digest
        ).first()
        if response is None:
            response = Response.objects.create(
                prompt=prompt,
                source=parsed.source,
                content=parsed.content,
                metadata=parsed.metadata,
            )
            counts["responses_created"] += 1
        else:
            counts["responses_unchanged"] += 1
        responses.append(response)

    if record.criteria:
        if Rubric.objects.filter(prompt=prompt).exists():
            counts["rubrics_unchanged"] += 1
        else:
            items = record.metadata.get(RUBRIC_ITEMS_KEY)
            if not prompt_created and items is not None:
                # The prompt came from an earlier file without a rubric: the items' extra
                # fields belong to the rubric created now, so they go with it.
                prompt.metadata = {**prompt.metadata, RUBRIC_ITEMS_KEY: items}
                prompt.save(update_fields=["metadata"])
            rubric_create(
                project=project,
                prompt=prompt,
                title=f"Rubric for {record.external_id}",
                criteria=[
                    CriterionInput(
                        text=c.text,
                        points=c.points,
                        category=c.category,
                        kind=c.kind,
                        tags=c.tags,
                    )
                    for c in record.criteria
                ],
                author=actor,
                note=f"Imported from {report.file} ({report.format})",
                enforce_checks=False,
            )
            counts["rubrics_created"] += 1
            counts["criteria_created"] += len(record.criteria)

    if record.preference is not None:
        chosen, rejected = (responses[i] for i in record.preference)
        _, created = PreferenceLabel.objects.get_or_create(
            prompt=prompt,
            chosen=chosen,
            rejected=rejected,
            source=PreferenceLabel.Source.DATASET,
        )
        counts["preference_labels_created" if created else "preference_labels_unchanged"] += 1
    return counts


def _storage_error(exc: DatabaseError) -> str:
    first_line = next(iter(str(exc).splitlines()), "")[:200]
    return f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__


class _Spool:
    """The parsed records waiting to be written, one JSON line each, in a temporary file:
    memory stays at one record however many the file has."""

    def __init__(self) -> None:
        self._file: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self.count = 0

    def add(self, record: ParsedRecord) -> None:
        self._file.write(json.dumps(record.to_dict()) + "\n")
        self.count += 1

    def __iter__(self) -> Iterator[ParsedRecord]:
        self._file.seek(0)
        for line in self._file:
            yield ParsedRecord.from_dict(json.loads(line))

    def close(self) -> None:
        self._file.close()


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


def _write(
    *,
    project: Project,
    spool: _Spool,
    report: ImportReport,
    actor,  # type: ignore[no-untyped-def]
) -> None:
    """The second pass, inside the caller's transaction with the project's row locked:
    write the spooled records. Atomic mode stops at the first record that cannot be
    stored here (e.g. a prompt id taken by other messages); the caller rolls back."""
    skip_invalid = report.skip_invalid
    for record in spool:
        try:
            if skip_invalid:
                with transaction.atomic():  # a savepoint: a bad record leaves nothing
                    counts = _import_record(
                        project=project, record=record, report=report, actor=actor
                    )
            else:
                counts = _import_record(project=project, record=record, report=report, actor=actor)
        except (_BadRecord, ApplicationError) as exc:
            # ApplicationError: a service below refused the record (atomic mode rolls
            # everything back; skip-invalid mode its savepoint).
            report.add_error(record.line, str(exc))
            if not skip_invalid:
                return
            continue
        except DatabaseError as exc:
            if not skip_invalid:
                raise _StorageFailed(record.line, exc) from exc
            report.add_error(record.line, f"could not be stored ({_storage_error(exc)})")
            continue
        report.add_counts(counts)


def data_import(
    *,
    project: Project,
    path: Path | str,
    fmt: str | None = None,
    actor=None,  # type: ignore[no-untyped-def]
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
