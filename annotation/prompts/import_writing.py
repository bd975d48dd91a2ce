"""The writing of parsed import records into a project: a prompt is matched on
(project, external_id), a response on (prompt, source, content hash), a prompt that already
has a rubric keeps it, and a preference pair is labelled once. A record is written whole or
refused with its reason, and a refused record leaves nothing: in skip-invalid mode the others
are still written. The records wait for their write in a spool, a temporary file of one
JSON line each, and are written in batches: each batch reads what the database holds for its
records in one query per table, checks and plans every record, and writes each table with
one multi-row insert, in a savepoint (a batch the database refuses is written again record
by record, so the record it refused is named).
"""

from __future__ import annotations

import json
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import DatabaseError, transaction
from django.utils import timezone

from annotation.bulk import insert_rows, new_ids
from annotation.errors import ApplicationError
from annotation.projects.models import AuditEvent, Project
from annotation.prompts.import_report import ImportReport
from annotation.prompts.importers.parsers import RUBRIC_ITEMS_KEY
from annotation.prompts.importers.records import ParsedCriterion, ParsedRecord, ParsedResponse
from annotation.prompts.models import (
    PreferenceLabel,
    Prompt,
    Response,
    content_hash,
    prompt_search_text,
)
from annotation.rubrics.models import Criterion, Rubric, RubricVersion
from annotation.rubrics.services import validate_criteria


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


@dataclass(eq=False, slots=True)
class _Row:
    """A prompt or response of the plan: its id once the batch has one for it, and for a
    prompt its messages and metadata."""

    pk: int | None
    messages: list[dict[str, Any]] | None = None
    metadata: dict[str, Any] | None = None


class _Batch:
    """The rows a batch of records will insert, planned record by record against what the
    database already holds (read once for the whole batch) and what earlier records of the
    batch planned. A record's checks all run before it plans anything, so a bad record
    leaves the plan as it was; ``insert`` then writes each table with one bulk insert.
    """

    def __init__(
        self,
        *,
        project: Project,
        records: list[ParsedRecord],
        report: ImportReport,
        actor: User | AnonymousUser | None,
    ) -> None:
        self.project = project
        self.report = report
        self.author_id = actor.pk if actor is not None and actor.is_authenticated else None
        self.prompts: dict[str, _Row] = {
            external_id: _Row(pk, messages, metadata)
            for pk, external_id, messages, metadata in Prompt.objects.filter(
                project=project, external_id__in={r.external_id for r in records}
            ).values_list("pk", "external_id", "messages", "metadata")
        }
        known = {row.pk: external_id for external_id, row in self.prompts.items()}
        hashes = {content_hash(r.content) for record in records for r in record.responses}
        # A response is keyed on (prompt external id, source, content hash).
        self.responses: dict[tuple[str, str, str], _Row] = {
            (known[prompt_id], source, digest): _Row(pk)
            for pk, prompt_id, source, digest in Response.objects.filter(
                prompt_id__in=list(known), content_hash__in=hashes
            ).values_list("pk", "prompt_id", "source", "content_hash")
        }
        self.with_rubric: set[str] = {
            known[pk]
            for pk in Rubric.objects.filter(prompt_id__in=list(known)).values_list(
                "prompt_id", flat=True
            )
        }
        by_pk = {row.pk: key for key, row in self.responses.items()}
        self.labels: set[tuple[tuple[str, str, str], tuple[str, str, str]]] = {
            (by_pk[chosen], by_pk[rejected])
            for chosen, rejected in PreferenceLabel.objects.filter(
                prompt_id__in=list(known), source=PreferenceLabel.Source.DATASET
            ).values_list("chosen_id", "rejected_id")
            if chosen in by_pk and rejected in by_pk
        }
        self.new_prompts: list[tuple[_Row, ParsedRecord]] = []
        self.new_responses: list[tuple[_Row, _Row, ParsedResponse, str]] = []
        self.new_rubrics: list[tuple[_Row, str, list[ParsedCriterion]]] = []
        self.new_labels: list[tuple[_Row, _Row, _Row]] = []
        self.changed_prompts: dict[int, _Row] = {}

    def plan(self, record: ParsedRecord) -> Counter[str]:
        """Plan one record; returns what it creates or finds unchanged. Raises _BadRecord
        or ApplicationError, having planned nothing."""
        counts: Counter[str] = Counter()
        _check_preference(record)
        criteria = record.criteria
        validate_criteria(criteria)
        prompt = self.prompts.get(record.external_id)
        if prompt is not None and _canonical(prompt.messages or []) != _canonical(record.messages):
            raise _BadRecord(
                f"prompt '{record.external_id}' already exists in this project with different messages"
            )
        # Checked: from here on the record only adds to the plan.
        prompt_created = prompt is None
        if prompt is None:
            prompt = self.prompts[record.external_id] = _Row(None, record.messages, record.metadata)
            self.new_prompts.append((prompt, record))
            counts["prompts_created"] += 1
        else:
            counts["prompts_unchanged"] += 1

        keys = []
        for parsed in record.responses:
            digest = content_hash(parsed.content)
            key = (record.external_id, parsed.source, digest)
            keys.append(key)
            if key in self.responses:
                counts["responses_unchanged"] += 1
                continue
            response = self.responses[key] = _Row(None)
            self.new_responses.append((response, prompt, parsed, digest))
            counts["responses_created"] += 1

        if criteria:
            if record.external_id in self.with_rubric:
                counts["rubrics_unchanged"] += 1
            else:
                items = record.metadata.get(RUBRIC_ITEMS_KEY)
                if not prompt_created and items is not None:
                    # The prompt came from an earlier record without a rubric: the items'
                    # extra fields belong to the rubric created now, so they go with it.
                    prompt.metadata = {**(prompt.metadata or {}), RUBRIC_ITEMS_KEY: items}
                    if prompt.pk is not None:
                        self.changed_prompts[prompt.pk] = prompt
                self.with_rubric.add(record.external_id)
                self.new_rubrics.append((prompt, f"Rubric for {record.external_id}", criteria))
                counts["rubrics_created"] += 1
                counts["criteria_created"] += len(criteria)

        if record.preference is not None:
            chosen, rejected = (keys[i] for i in record.preference)
            if (chosen, rejected) in self.labels:
                counts["preference_labels_unchanged"] += 1
            else:
                self.labels.add((chosen, rejected))
                self.new_labels.append((prompt, self.responses[chosen], self.responses[rejected]))
                counts["preference_labels_created"] += 1
        return counts

    def insert(self) -> None:
        """Write the plan, one bulk insert per table. Every new row's id is handed out
        first, so rows name the rows they point to whatever the order of the inserts."""
        for row, pk in zip(
            [p for p, _ in self.new_prompts], new_ids(Prompt, len(self.new_prompts)), strict=True
        ):
            row.pk = pk
        now = timezone.now()
        project = self.project.pk
        insert_rows(
            Prompt,
            PROMPT_COLUMNS,
            (
                (
                    row.pk,
                    project,
                    r.external_id,
                    r.messages,
                    r.reference_answer,
                    row.metadata,
                    prompt_search_text(r.messages),
                    now,
                )  # fmt: skip
                for row, r in self.new_prompts
            ),
        )
        for row, pk in zip(
            [r for r, *_ in self.new_responses],
            new_ids(Response, len(self.new_responses)),
            strict=True,
        ):
            row.pk = pk
        insert_rows(
            Response,
            RESPONSE_COLUMNS,
            (
                (row.pk, prompt.pk, parsed.source, parsed.content, digest, parsed.metadata, now)
                for row, prompt, parsed, digest in self.new_responses
            ),
        )
        Prompt.objects.bulk_update(
            [Prompt(pk=pk, metadata=row.metadata) for pk, row in self.changed_prompts.items()],
            ["metadata"],
        )
        insert_rows(
            PreferenceLabel,
            ("prompt_id", "chosen_id", "rejected_id", "source", "created_by_id", "created_at"),
            (
                (prompt.pk, chosen.pk, rejected.pk, PreferenceLabel.Source.DATASET, None, now)
                for prompt, chosen, rejected in self.new_labels
            ),
        )
        count = len(self.new_rubrics)
        rubric_ids = new_ids(Rubric, count)
        version_ids = new_ids(RubricVersion, count)
        insert_rows(
            Rubric,
            RUBRIC_COLUMNS,
            (
                (pk, project, prompt.pk, title[:300], Rubric.Status.DRAFT, version, None, now, now)
                for pk, version, (prompt, title, _) in zip(
                    rubric_ids, version_ids, self.new_rubrics, strict=True
                )
            ),
        )
        note = f"Imported from {self.report.file} ({self.report.format})"
        insert_rows(
            RubricVersion,
            VERSION_COLUMNS,
            (
                (pk, rubric, 1, None, self.author_id, "", note, now)
                for pk, rubric in zip(version_ids, rubric_ids, strict=True)
            ),
        )
        insert_rows(
            Criterion,
            CRITERION_COLUMNS,
            (
                (
                    version,
                    uuid.uuid4(),
                    position,
                    c.text,
                    c.points,
                    c.category,
                    c.kind,
                    list(c.tags),
                    Criterion.Provenance.HUMAN,
                    "",
                )  # fmt: skip
                for version, (_, _, criteria) in zip(version_ids, self.new_rubrics, strict=True)
                for position, c in enumerate(criteria)
            ),
        )
        data = {"version": 1, "author_model": ""}
        insert_rows(
            AuditEvent,
            ("project_id", "actor_id", "action", "target", "data", "created_at"),
            ((project, self.author_id, "rubric.version", str(pk), data, now) for pk in rubric_ids),
        )


PROMPT_COLUMNS = (
    "id", "project_id", "external_id", "messages", "reference_answer", "metadata",
    "search_text", "created_at",
)  # fmt: skip
RESPONSE_COLUMNS = (
    "id", "prompt_id", "source", "content", "content_hash", "metadata", "created_at",
)  # fmt: skip
RUBRIC_COLUMNS = (
    "id", "project_id", "prompt_id", "title", "status", "current_version_id",
    "approved_version_id", "created_at", "updated_at",
)  # fmt: skip
VERSION_COLUMNS = (
    "id", "rubric_id", "number", "parent_id", "author_id", "author_model", "note", "created_at",
)  # fmt: skip
CRITERION_COLUMNS = (
    "version_id", "key", "position", "text", "points", "category", "kind", "tags",
    "provenance", "provenance_model",
)  # fmt: skip


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


BATCH_RECORDS = 500


def _write(
    *,
    project: Project,
    spool: _Spool,
    report: ImportReport,
    actor: User | AnonymousUser | None,
) -> None:
    """The second pass, inside the caller's transaction with the project's row locked:
    write the spooled records in batches. Atomic mode stops at the first record that cannot
    be stored here (e.g. a prompt id taken by other messages); the caller rolls back."""
    batch: list[ParsedRecord] = []
    for record in spool:
        batch.append(record)
        if len(batch) == BATCH_RECORDS:
            if not _write_batch(project=project, records=batch, report=report, actor=actor):
                return
            batch = []
    if batch:
        _write_batch(project=project, records=batch, report=report, actor=actor)


def _write_batch(
    *,
    project: Project,
    records: list[ParsedRecord],
    report: ImportReport,
    actor: User | AnonymousUser | None,
) -> bool:
    """Write one batch in a savepoint; False when atomic mode met a bad record. A batch
    the database refuses leaves nothing and is written again record by record, so the
    record it refused is named (atomic mode) or skipped alone (skip-invalid mode)."""
    outcomes: list[tuple[int, Counter[str] | str]] = []
    try:
        with transaction.atomic():
            batch = _Batch(project=project, records=records, report=report, actor=actor)
            stopped = False
            for record in records:
                try:
                    outcomes.append((record.line, batch.plan(record)))
                except (_BadRecord, ApplicationError) as exc:
                    # ApplicationError: a criterion the rubric services refuse.
                    outcomes.append((record.line, str(exc)))
                    stopped = not report.skip_invalid
                    if stopped:
                        break
            if not stopped:
                batch.insert()
    except DatabaseError as exc:
        if len(records) > 1:
            return all(
                _write_batch(project=project, records=[r], report=report, actor=actor)
                for r in records
            )
        if not report.skip_invalid:
            raise _StorageFailed(records[0].line, exc) from exc
        report.add_error(records[0].line, f"could not be stored ({_storage_error(exc)})")
        return True
    for line, outcome in outcomes:
        if isinstance(outcome, str):
            report.add_error(line, outcome)
        else:
            report.add_counts(outcome)
    return not stopped
