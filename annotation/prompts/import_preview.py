"""A look at an import file before importing it: its format, and what its first records
would create in the project (a new prompt or one it already has, the responses, the rubric,
a preference label), with the bad lines among them. Reads only the start of the file and
writes nothing.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from django.core.files.uploadedfile import UploadedFile

from annotation.errors import ApplicationError
from annotation.projects.models import Project
from annotation.prompts.import_writing import _canonical
from annotation.prompts.importers.formats import FORMATS, detect_format, iter_records
from annotation.prompts.importers.reading import Limits
from annotation.prompts.importers.records import (
    ImportFormatError,
    ParsedCriterion,
    ParsedRecord,
    RecordError,
)
from annotation.prompts.models import Prompt
from annotation.prompts.services import import_limits
from annotation.rubrics.models import Rubric

PREVIEW_RECORDS = 5
SHOWN_CRITERIA = 4


@dataclass
class PreviewRecord:
    line: int
    external_id: str
    question: str  # the final user turn
    turns: int
    prompt: str  # "new", "exists" or "conflict" (exists with other messages: the line fails)
    sources: list[str]
    criteria: list[ParsedCriterion]
    criteria_count: int
    rubric: str  # "", "new" or "kept" (the prompt has a rubric already)
    preference: tuple[str, str] | None  # (chosen source, rejected source)

    @property
    def more_criteria(self) -> int:
        return self.criteria_count - len(self.criteria)


@dataclass
class ImportPreview:
    file: str
    format: str
    detected: bool
    records: list[PreviewRecord] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    more: bool = False  # the file goes on past what was read


def _question(record: ParsedRecord) -> str:
    users = [m["content"] for m in record.messages if m["role"] == "user"]
    return (users or [record.messages[-1]["content"]])[-1]


def data_preview(
    *,
    project: Project,
    path: Path | str,
    fmt: str | None = None,
    display_name: str | None = None,
    limits: Limits | None = None,
    count: int = PREVIEW_RECORDS,
) -> ImportPreview:
    """What the first ``count`` records of ``path`` would create in ``project``, and the
    bad lines read on the way. Raises ApplicationError for a whole-file problem, with the
    message an import would give."""
    path = Path(path)
    name = display_name or path.name
    limits = limits or import_limits()
    if fmt and fmt not in FORMATS:
        raise ApplicationError(f"{name}: unknown format '{fmt}'. Known: {', '.join(FORMATS)}.")
    parsed: list[ParsedRecord] = []
    try:
        chosen = fmt or detect_format(path, limits=limits)
        preview = ImportPreview(file=name, format=chosen, detected=not fmt)
        for item in iter_records(path, chosen, limits=limits):
            if len(parsed) >= count or len(preview.errors) >= count:
                preview.more = True
                break
            if isinstance(item, RecordError):
                preview.errors.append(item)
            else:
                parsed.append(item)
    except ImportFormatError as exc:
        raise ApplicationError(f"{name}: {exc}; nothing was imported.") from exc
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise ApplicationError(f"{name}: cannot read the file ({exc}).") from exc
    existing = {
        p.external_id: p
        for p in Prompt.objects.filter(project=project, external_id__in=[r.external_id for r in parsed])
    }  # fmt: skip
    with_rubric = set(
        Rubric.objects.filter(prompt__in=existing.values()).values_list("prompt_id", flat=True)
    )
    for record in parsed:
        prompt = existing.get(record.external_id)
        if prompt is None:
            state = "new"
        elif _canonical(prompt.messages) == _canonical(record.messages):
            state = "exists"
        else:
            state = "conflict"
        rubric = ""
        if record.criteria:
            rubric = "kept" if prompt is not None and prompt.pk in with_rubric else "new"
        preference = None
        if record.preference is not None:
            chosen_i, rejected_i = record.preference
            preference = (record.responses[chosen_i].source, record.responses[rejected_i].source)
        preview.records.append(
            PreviewRecord(
                line=record.line,
                external_id=record.external_id,
                question=_question(record),
                turns=len(record.messages),
                prompt=state,
                sources=[r.source for r in record.responses],
                criteria=record.criteria[:SHOWN_CRITERIA],
                criteria_count=len(record.criteria),
                rubric=rubric,
                preference=preference,
            )
        )
    return preview


def upload_preview(
    *, project: Project, upload: UploadedFile[bytes], fmt: str | None = None
) -> ImportPreview:
    """``data_preview`` of an uploaded file, read from a temporary copy that keeps its
    name's ending (``.csv``, ``.gz``) and is removed at once."""
    name = Path(upload.name or "upload").name
    suffix = "".join(Path(name).suffixes[-2:])
    handle, temp = tempfile.mkstemp(suffix=suffix)
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        return data_preview(project=project, path=temp, fmt=fmt, display_name=name)
    finally:
        os.unlink(temp)
