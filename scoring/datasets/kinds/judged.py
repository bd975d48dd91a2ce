"""The judgments that judge distillation exports are made of: every good judgment of the
project's runs of a mode, read run by run, a few chunks per query (a chunk holds what each
judge was shown; the database expands its units and joins each to its judgment and
response), on PostgreSQL by a reader thread a few batches ahead (``readahead``), and the
distillation rows made of them, per criterion or pairwise."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from django.db import connection

from annotation.projects.models import Project
from annotation.prompts.models import Response
from scoring.datasets.kinds.base import Notes, Row, _batched, probe_copy
from scoring.datasets.kinds.prompts import prompt_rubrics
from scoring.datasets.readahead import can_read_ahead, read_ahead
from scoring.runs.models import Judgment, Run, RunChunk, RunJudgment

if TYPE_CHECKING:
    from scoring.datasets.options import ExportOptions

CHUNKS_PER_QUERY = 16
FETCH_ROWS = 2000
# Batches the reader may be ahead: a query's rows and then some (16 chunks' units are at most
# 16,000 rows), so the writer keeps working while the database sorts the next query's rows.
READ_AHEAD = 12
# A query's rows (16 chunks' judgments with their responses' text, 6–15 MB) are sorted in
# memory on PostgreSQL instead of in temporary files (the default work_mem is 4 MB).
SORT_MEMORY = "64MB"

# The judgments of a few chunks at a time, with what their judge was shown: each unit of
# each chunk (JSON, expanded by the database), its judgment by key (linked to that run, not
# failed) and the response(s), in chunk and unit order (a sort of a few thousand rows).
_UNITS = {
    "postgresql": (
        "CROSS JOIN LATERAL jsonb_array_elements(c.units) WITH ORDINALITY AS u(value, n)",
        "u.value->>'{}'",
        "u.value->'crit'->0->>'{}'",
        "(u.value->'crit')::text",
        "j.detail::text",
        "u.n",
    ),
    "sqlite": (
        "JOIN json_each(c.units) AS u",
        "json_extract(u.value, '$.{}')",
        "json_extract(u.value, '$.crit[0].{}')",
        "json_extract(u.value, '$.crit')",
        "j.detail",
        "u.key",
    ),
}


def _judged_sql(vendor: str, mode: str, chunks: int) -> str:
    expand, field, criterion, criteria, detail, ordinal = _UNITS[vendor]
    table = {m: m._meta.db_table for m in (RunChunk, RunJudgment, Judgment, Response)}
    if mode == Run.Mode.PER_CRITERION:
        columns = (f"{criterion.format('text')}, {criterion.format('points')}, j.met, "
                   "j.probability")  # fmt: skip
        other = ""
        where = "AND j.met IS NOT NULL"
    else:
        columns = f"{criteria}, j.winner, {detail}, o.source, o.content"
        other = f"JOIN {table[Response]} o ON o.id = j.other_id"
        where = ""
    return f"""
        SELECT j.id, j.explanation, j.model, j.template_version,
               r.prompt_id, r.source, r.content, {columns}
        FROM {table[RunChunk]} c
        {expand}
        JOIN {table[Judgment]} j ON j.key = {field.format("k")}
        JOIN {table[RunJudgment]} rj ON rj.judgment_id = j.id AND rj.run_id = c.run_id
        JOIN {table[Response]} r ON r.id = j.response_id
        {other}
        WHERE c.id IN ({", ".join(["%s"] * chunks)}) AND j.error = '' {where}
        ORDER BY c.run_id, c."index", {ordinal}
    """  # noqa: S608 (table names from the models; values are parameters)


@contextmanager
def _sort_memory(vendor: str) -> Iterator[None]:
    """``SORT_MEMORY`` for this connection's sorts while the export reads (PostgreSQL): for
    the transaction inside one, else until the reading ends."""
    if vendor != "postgresql":
        yield
        return
    local = connection.in_atomic_block
    with connection.cursor() as cursor:
        cursor.execute(f"SET {'LOCAL ' if local else ''}work_mem = '{SORT_MEMORY}'")
    try:
        yield
    finally:
        if not local and connection.connection is not None:
            with connection.cursor() as cursor:
                cursor.execute("RESET work_mem")


def _judged(project: Project, mode: str) -> Iterator[tuple[Any, ...]]:
    """Every good judgment of the project's runs of ``mode`` as a tuple of plain values
    (the columns of ``_judged_sql``), in run, chunk and unit order, a judgment that several
    runs share once (from the first); read ``CHUNKS_PER_QUERY`` chunks at a time through a
    server-side cursor, on PostgreSQL by a reader thread a few batches ahead."""
    vendor = connection.vendor if connection.vendor in _UNITS else "sqlite"
    project_id = project.pk

    def batches() -> Iterator[list[tuple[Any, ...]]]:
        chunks = (
            RunChunk.objects.filter(run__project_id=project_id, run__mode=mode, retry=False)
            .filter(run__probe__isnull=True)  # a judge probe judged perturbed copies
            .exclude(run__status=Run.Status.QUEUED)
            .order_by("run_id", "index")
            .values_list("pk", flat=True)
        )
        with _sort_memory(vendor):
            for group in _batched(chunks.iterator(chunk_size=1000), CHUNKS_PER_QUERY):
                with connection.chunked_cursor() as cursor:
                    cursor.execute(_judged_sql(vendor, mode, len(group)), group)
                    while rows := cursor.fetchmany(FETCH_ROWS):
                        yield rows

    seen = bytearray()  # a bit per judgment id: memory grows with the largest id / 8
    for rows in read_ahead(batches, READ_AHEAD) if can_read_ahead() else batches():
        for row in rows:
            pk = row[0]
            byte, bit = pk >> 3, 1 << (pk & 7)
            if byte >= len(seen):
                seen.extend(bytes(byte + 1 - len(seen) + 4096))
            if seen[byte] & bit:
                continue
            seen[byte] |= bit
            yield row


def _distill(project: Project, options: ExportOptions, notes: Notes, mode: str) -> Iterator[Row]:
    kept = {
        pr.prompt.pk: (pr.messages, pr.prompt.external_id, pr.split)
        for pr in prompt_rubrics(project, options, need_rubric=False)
    }
    sources = set(options.sources)
    pairwise = mode == Run.Mode.PAIRWISE
    shown_texts: dict[str, list[str]] = {}  # the criteria a judge was shown, decoded once
    for row in _judged(project, mode):
        pk, explanation, model, template, prompt_pk, source, content, *rest = row
        prompt = kept.get(prompt_pk)
        if prompt is None or (sources and source not in sources) or probe_copy(source, sources):
            continue
        messages, external_id, split = prompt
        if not pairwise:
            text, points, met, probability = rest
            yield split, {"prompt": messages, "response": content, "criterion": text,
                          "points": float(points), "met": bool(met), "probability": probability,
                          "explanation": explanation, "judge_model": model,
                          "template_version": template, "prompt_id": external_id,
                          "split": split}  # fmt: skip
            continue
        shown, winner, detail, other_source, other = rest
        if (sources and other_source not in sources) or probe_copy(other_source, sources):
            continue
        verdicts = (json.loads(detail) if detail else {}).get("criteria") or {}
        texts = shown_texts.get(shown)
        if texts is None:
            if len(shown_texts) > 1000:  # runs with criteria per prompt: keep memory bounded
                shown_texts.clear()
            texts = shown_texts[shown] = [c["text"] for c in json.loads(shown)]
        criteria = [{"criterion": text, "winner": str(verdicts.get(str(i), ""))}
                    for i, text in enumerate(texts, start=1)]  # fmt: skip
        yield split, {"prompt": messages, "response_a": content, "response_b": other,
                      "winner": winner, "criteria": criteria, "explanation": explanation,
                      "judge_model": model, "template_version": template,
                      "prompt_id": external_id, "split": split}  # fmt: skip


def judgment_count(project: Project, mode: str) -> int:
    """An upper bound of the distillation rows of ``mode``, for progress."""
    return RunJudgment.objects.filter(
        run__project=project, run__mode=mode, run__probe__isnull=True
    ).count()
