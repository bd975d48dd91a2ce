"""The writing of parsed import records into a project: a prompt is matched on
(project, external_id), a response on (prompt, source, content hash), a prompt that already
has a rubric keeps it, and a preference pair is labelled once. A record is written whole or
refused with its reason; in skip-invalid mode each record has its own savepoint, so a bad
one leaves nothing and the others are still written. The records wait for their write
in a spool, a temporary file of one JSON line each.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Iterator
from typing import IO, Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import DatabaseError, transaction

from annotation.errors import ApplicationError
from annotation.projects.models import Project
from annotation.prompts.import_report import ImportReport
from annotation.prompts.importers.parsers import RUBRIC_ITEMS_KEY
from annotation.prompts.importers.records import ParsedRecord
from annotation.prompts.models import PreferenceLabel, Prompt, Response, content_hash
from annotation.rubrics.models import Rubric
from annotation.rubrics.services import CriterionInput, rubric_create


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
    actor: User | AnonymousUser | None,
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


def _write(
    *,
    project: Project,
    spool: _Spool,
    report: ImportReport,
    actor: User | AnonymousUser | None,
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
