"""Import of prompts, responses, rubrics and preference labels from files.

The file is streamed record by record inside one transaction. By default the import is
atomic: if any record is bad the transaction is rolled back, so a file with a bad line
imports nothing. With ``skip_invalid`` each record is written in its own savepoint: the
valid records are imported and the bad ones are skipped and reported (line and reason).
Re-importing the same file creates nothing: prompts are matched on (project, external_id),
responses on (prompt, source, content hash), and a prompt that already has a rubric
keeps it.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import DatabaseError, transaction

from ..errors import ApplicationError
from ..importers import (
    FORMATS,
    ImportFormatError,
    ParsedRecord,
    RecordError,
    detect_format,
    iter_records,
)
from ..importers.parsers import RUBRIC_ITEMS_KEY
from ..models import PreferenceLabel, Project, Prompt, Response, Rubric, content_hash
from .audit import audit
from .rubrics import CriterionInput, rubric_create


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


class _Rollback(Exception):
    pass


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


def data_import(
    *,
    project: Project,
    path: Path | str,
    fmt: str | None = None,
    actor=None,  # type: ignore[no-untyped-def]
    display_name: str | None = None,
    skip_invalid: bool = False,
) -> ImportReport:
    """Import one file into ``project``.

    Atomic by default: when the report has errors nothing was written. With
    ``skip_invalid`` the valid records are written and the bad ones are skipped, each
    listed in the report with its line and reason; a record is written whole or not at
    all (its own savepoint). Raises ApplicationError for whole-file problems (unreadable
    file, unknown or undetectable format), and then nothing was written in either mode.
    """
    path = Path(path)
    name = display_name or path.name
    if fmt and fmt not in FORMATS:
        raise ApplicationError(f"{name}: unknown format '{fmt}'. Known: {', '.join(FORMATS)}.")
    try:
        fmt = fmt or detect_format(path)
    except ImportFormatError as exc:
        raise ApplicationError(f"{name}: {exc}") from exc
    except OSError as exc:
        raise ApplicationError(f"{name}: cannot read the file ({exc.strerror or exc}).") from exc
    report = ImportReport(file=name, format=fmt, skip_invalid=skip_invalid)
    line = 0
    try:
        with transaction.atomic():
            # Serialise imports into one project: check-then-create below relies on it.
            Project.objects.select_for_update().filter(pk=project.pk).first()
            for item in iter_records(path, fmt):
                line = item.line
                if isinstance(item, RecordError):
                    report.add_error(item.line, item.reason)
                    continue
                report.records += 1
                if report.error_count and not skip_invalid:
                    continue  # keep validating the rest, but stop writing
                try:
                    if skip_invalid:
                        with transaction.atomic():  # a savepoint: a bad record leaves nothing
                            counts = _import_record(
                                project=project, record=item, report=report, actor=actor
                            )
                    else:
                        counts = _import_record(
                            project=project, record=item, report=report, actor=actor
                        )
                except (_BadRecord, ApplicationError) as exc:
                    # ApplicationError: a service below refused the record (atomic mode
                    # rolls everything back; skip-invalid mode its savepoint).
                    report.add_error(item.line, str(exc))
                    continue
                except DatabaseError as exc:
                    if not skip_invalid:
                        raise
                    report.add_error(item.line, f"could not be stored ({_storage_error(exc)})")
                    continue
                report.add_counts(counts)
            if not report.committed:
                raise _Rollback
            audit(
                project=project,
                actor=actor,
                action="data.import",
                target=name,
                **{k: v for k, v in report.as_dict().items() if isinstance(v, int)},
            )
    except _Rollback:
        _zero_counts(report)
    except ImportFormatError as exc:
        raise ApplicationError(f"{name}: {exc}") from exc
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise ApplicationError(f"{name}: cannot read the file ({exc}).") from exc
    except DatabaseError as exc:
        # Validation should have caught it; if not, nothing was written (rolled back).
        raise ApplicationError(
            f"{name}: line {line} could not be stored ({_storage_error(exc)}); "
            "nothing was imported."
        ) from exc
    return report


def _zero_counts(report: ImportReport) -> None:
    """After a rollback nothing was written: the report must not claim otherwise."""
    for f in fields(report):
        if f.name.endswith(("_created", "_unchanged")):
            setattr(report, f.name, 0)


def data_import_upload(
    *,
    project: Project,
    upload: UploadedFile,
    fmt: str | None = None,
    actor=None,  # type: ignore[no-untyped-def]
    skip_invalid: bool = False,
) -> ImportReport:
    """Import an uploaded file: spooled to a temporary file (keeping its suffixes, so
    ``.gz`` and ``.csv`` are recognised), then ``data_import``."""
    suffix = "".join(Path(upload.name or "").suffixes[-2:])
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        for chunk in upload.chunks():
            tmp.write(chunk)
        tmp.flush()
        return data_import(
            project=project,
            path=tmp.name,
            fmt=fmt,
            actor=actor,
            display_name=upload.name,
            skip_invalid=skip_invalid,
        )
