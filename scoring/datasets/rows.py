"""The rows of each export kind, streamed from the database, with their pyarrow schemas.

Prompts are read in id order, ``PROMPT_BATCH`` at a time, with their rubrics and criteria
fetched per batch (a constant number of queries per batch, memory bounded by the batch);
judgments are read run by run, a few chunks per query (a chunk holds what each judge was
shown; the database expands its units and joins each to its judgment and response), on
PostgreSQL by a reader thread a few batches ahead (``readahead``).
Every row carries its split (``options.split_of`` on the prompt's external id) and the
rubric version(s) it was made from.

What goes in: the approved rubric versions (or the latest, by option) — a prompt's own
rubric and the project-wide ones, as runs use them; prompts without one are left out.
Prompts whose messages duplicate an earlier prompt's are dropped, and so are those on the
exclusion list (external ids, or texts matched against the last user message and the whole
conversation, case and spacing ignored).

What consumers need (``prepare`` decides it and ``Notes`` tells the card): criterion text
exactly as stored; points as integers when every criterion the export draws from has whole
points, else floats throughout; verl rows repeat ``prompt`` and ``reward_model`` inside
``extra_info``, where rubric rewards read them; the prompt's metadata (its source record's
other fields) in every RL row; preference pairs one row per (prompt, chosen text, rejected
text), and a ``margin`` column only when asked for, never null.

Each kind is a module of ``scoring.datasets.kinds`` (its schema, its rows, its row count),
named in ``kinds.registry``; the entry points here look the kind up there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import Q

from annotation.projects.models import Project
from annotation.prompts.models import Response
from annotation.rubrics.models import Criterion, Rubric
from scoring.datasets.kinds.base import Notes, Row
from scoring.datasets.kinds.prompts import _first_fractional, _version_field
from scoring.datasets.kinds.registry import export_kind
from scoring.datasets.options import ExportOptions
from scoring.runs.models import Run


def schema(
    kind: str, conversational: bool = True, *, whole_points: bool = True, margins: bool = False
) -> Any:
    """The pyarrow schema of ``kind``'s rows (preference pairs: messages or plain text).

    ``whole_points``: rubric points (RaR weights) are int64, as they are when every
    criterion the export draws from has whole points (``Notes.whole_points``), else float64.
    ``margins``: preference pairs carry a non-null ``margin`` column (``ExportOptions``)."""
    return export_kind(kind).schema(
        conversational=conversational, whole_points=whole_points, margins=margins
    )


@dataclass
class Prepared:
    """An export ready to write: its schema, its rows (``(split, row)``, streamed once, in
    a deterministic order) and the notes for its card (complete after the last row)."""

    schema: Any
    rows: Iterator[Row]
    notes: Notes
    spread: tuple[str, str] | None = None  # for ``write_export``


def prepare(project: Project, options: ExportOptions) -> Prepared:
    """Decide what the rows' types depend on (whole or fractional points: one query), then
    the schema, and the rows to stream."""
    kind = export_kind(options.kind)
    notes = Notes()
    if kind.pointed:
        notes.fractional = _first_fractional(project, options)
        notes.whole_points = notes.fractional is None
    return Prepared(
        schema(options.kind, options.conversational, whole_points=notes.whole_points,
               margins=options.margins),
        kind.rows(project, options, notes),
        notes,
        kind.spread,
    )  # fmt: skip


def iter_rows(project: Project, options: ExportOptions) -> Iterator[Row]:
    """(split, row) for every row of the export, in a deterministic order (``prepare``
    gives the schema that goes with them)."""
    return prepare(project, options).rows


def count(project: Project, options: ExportOptions) -> int:
    """An upper bound of the rows, for progress."""
    return export_kind(options.kind).count(project, options)


def card_facts(project: Project, options: ExportOptions) -> dict[str, Any]:
    """What the dataset card says beyond the counts: the response sources, rubric
    statistics of the versions exported, and provenance (judges, template versions)."""
    field = _version_field(options)
    versions = [
        v for v in Rubric.objects.filter(project=project).values_list(field, flat=True) if v
    ]
    per_version: defaultdict[int, int] = defaultdict(int)
    negative = total = 0
    for version_id, points in Criterion.objects.filter(version_id__in=versions).values_list(
        "version_id", "points"
    ):
        per_version[version_id] += 1
        total += 1
        negative += points < 0
    sizes = sorted(per_version.values())
    runs = Run.objects.without_probes().filter(project=project).exclude(status=Run.Status.QUEUED)
    judges = sorted(
        {
            (e or "", m, t)
            for e, m, t in runs.values_list("endpoint__name", "model", "template_version")
        }
    )
    sources = Response.objects.filter(prompt__project=project).without_probes()
    if options.sources:
        sources = sources.filter(Q(source__in=options.sources))
    return {
        "sources": sorted(set(sources.values_list("source", flat=True))),
        "rubric_stats": {
            "rubrics": len(sizes),
            "criteria": total,
            "criteria_per_rubric_mean": round(total / len(sizes), 3) if sizes else 0,
            "criteria_per_rubric_min": sizes[0] if sizes else 0,
            "criteria_per_rubric_max": sizes[-1] if sizes else 0,
            "negative_point_share": round(negative / total, 4) if total else 0,
        },
        "provenance": {
            "judges": [{"endpoint": e, "model": m, "template_version": t} for e, m, t in judges],
            "rubric_versions": options.versions,
            "options": options.as_dict(),
        },
    }


__all__ = [
    "Prepared",
    "card_facts",
    "count",
    "iter_rows",
    "prepare",
    "schema",
]
