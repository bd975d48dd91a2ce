"""Import of prompts, responses, rubrics and preference labels from files.

The file is streamed record by record inside one transaction; if any record is bad the
transaction is rolled back, so a file with a bad line imports nothing. Re-importing the
same file creates nothing: prompts are matched on (project, external_id), responses on
(prompt, source, content hash), and a prompt that already has a rubric keeps it.
"""

from __future__ import annotations

import json
import tempfile
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
from ..models import PreferenceLabel, Project, Prompt, Response, Rubric, content_hash
from .audit import audit
from .rubrics import CriterionInput, rubric_create


@dataclass
class ImportReport:
    file: str
    format: str
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
        return self.error_count == 0

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
        return {**asdict(self), "ok": self.ok, "unchanged": self.ok and not self.changed}

    def add_error(self, line: int, reason: str) -> None:
        self.error_count += 1
        if len(self.errors) < settings.IMPORT_MAX_REPORTED_ERRORS:
            self.errors.append({"line": line, "reason": reason})


class _Rollback(Exception):
    pass


def _canonical(messages: list[dict[str, Any]]) -> str:
    return json.dumps(messages, sort_keys=True, ensure_ascii=False)


def _import_record(
    *,
    project: Project,
    record: ParsedRecord,
    report: ImportReport,
    actor,  # type: ignore[no-untyped-def]
) -> None:
    prompt = Prompt.objects.filter(project=project, external_id=record.external_id).first()
    if prompt is None:
        prompt = Prompt.objects.create(
            project=project,
            external_id=record.external_id,
            messages=record.messages,
            reference_answer=record.reference_answer,
            metadata=record.metadata,
        )
        report.prompts_created += 1
    elif _canonical(prompt.messages) != _canonical(record.messages):
        report.add_error(
            record.line,
            f"prompt '{record.external_id}' already exists in this project with different messages",
        )
        return
    else:
        report.prompts_unchanged += 1

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
            report.responses_created += 1
        else:
            report.responses_unchanged += 1
        responses.append(response)

    if record.criteria:
        if Rubric.objects.filter(prompt=prompt).exists():
            report.rubrics_unchanged += 1
        else:
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
            report.rubrics_created += 1
            report.criteria_created += len(record.criteria)

    if record.preference is not None:
        chosen, rejected = (responses[i] for i in record.preference)
        if chosen.pk == rejected.pk:
            report.add_error(record.line, "chosen and rejected responses are identical")
            return
        _, created = PreferenceLabel.objects.get_or_create(
            prompt=prompt,
            chosen=chosen,
            rejected=rejected,
            source=PreferenceLabel.Source.DATASET,
        )
        if created:
            report.preference_labels_created += 1
        else:
            report.preference_labels_unchanged += 1


def data_import(
    *,
    project: Project,
    path: Path | str,
    fmt: str | None = None,
    actor=None,  # type: ignore[no-untyped-def]
    display_name: str | None = None,
) -> ImportReport:
    """Import one file into ``project``; all or nothing.

    Returns the report; when it has errors nothing was written. Raises ApplicationError
    for whole-file problems (unreadable file, unknown or undetectable format).
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
    report = ImportReport(file=name, format=fmt)
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
                if report.error_count:
                    continue  # keep validating the rest, but stop writing
                _import_record(project=project, record=item, report=report, actor=actor)
            if report.error_count:
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
            f"{name}: line {line} could not be stored "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); nothing was imported."
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
) -> ImportReport:
    """Import an uploaded file: spooled to a temporary file (keeping its suffixes, so
    ``.gz`` and ``.csv`` are recognised), then ``data_import``."""
    suffix = "".join(Path(upload.name or "").suffixes[-2:])
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        for chunk in upload.chunks():
            tmp.write(chunk)
        tmp.flush()
        return data_import(
            project=project, path=tmp.name, fmt=fmt, actor=actor, display_name=upload.name
        )
