"""What a run's page shows of its results, stored once the run finishes: the run page of a
run of a million judgments reads one row and a few hundred others instead of every
judgment (minutes and gigabytes per request otherwise).

A worker computes the summary when the run finishes (``run_finished``), from the same
functions as the live results (``scoring.runs.results``), reading the run a chunk at a time
so that its memory stays bounded. The page uses it while its stamp matches the run (the
status, the end time and the counts: a retried run finishes again with a new stamp). A
small run without a current summary is computed live, as before, and its summary stored; a
large one asks a worker once and shows its progress until the summary is there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar, overload

from django.core.cache import cache
from django.db import models, transaction

from annotation.prompts.models import Response
from scoring.engine import pairwise
from scoring.judges.failures import FailureGroup, failure_groups
from scoring.runs.models import Judgment, Run, RunJudgment
from scoring.runs.modes.base import Unit
from scoring.runs.modes.registry import mode_for
from scoring.runs.results import (
    PairResult,
    ResponseResult,
    RunResults,
    SourceResult,
    graded_results,
    run_results,
    source_results,
)

logger = logging.getLogger(__name__)

# What the page lists of each table (the rest is counted): as the template shows them.
HEAD_RESPONSES = 500
HEAD_PAIRS = 500
HEAD_FAILURES = 200
# Runs of up to this many units are computed live when their summary is missing (tens of
# milliseconds); larger ones wait for a worker.
LIVE_UNITS = 20_000

T = TypeVar("T")


class RunSummary(models.Model):
    """The run page's figures of one run (``summary_figures``), as JSON."""

    run = models.OneToOneField(Run, on_delete=models.CASCADE, related_name="summary")
    stamp = models.CharField(max_length=200, help_text="The run's state the figures are of.")
    figures = models.JSONField(default=dict)
    seconds = models.FloatField(default=0.0, help_text="Time the computation took.")
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "scoring"

    def __str__(self) -> str:
        return f"summary of run {self.run_id}"


def run_stamp(run: Run) -> str:
    """What the results depend on that changes when a run works: a summary of another
    stamp is stale."""
    finished = run.finished_at.isoformat() if run.finished_at else ""
    return f"{run.status}|{finished}|{run.total}|{run.done}|{run.failed}|{run.reused}"


class Head(Sequence[T]):
    """The first rows of a longer list, and its full length: what a page shows of a table.
    ``len`` (the template's ``|length``) is the whole list's; indexing and slicing (``|slice``)
    reach the rows kept only."""

    def __init__(self, rows: list[T], total: int) -> None:
        self.rows = rows
        self.total = total

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> list[T]: ...
    def __getitem__(self, index: int | slice) -> T | list[T]:
        return self.rows[index]

    def __iter__(self) -> Iterator[T]:
        return iter(self.rows)

    def __len__(self) -> int:
        return self.total


@dataclass
class PageSource:
    """A source's line of the scores table and its histogram; ``scores``: a count only."""

    source: str
    scores: Head[float]
    undefined: int
    mean: float | None
    se: float | None
    histogram: list[int]


@dataclass
class PageResults:
    """The run page's results: the first rows of each table with the full counts."""

    responses: Head[ResponseResult]
    sources: list[PageSource]
    failures: Head[tuple[Judgment, dict[str, Any]]]
    failure_groups: list[FailureGroup]
    pairs: Head[PairResult]
    position: pairwise.PositionBias | None


# --- computing ------------------------------------------------------------------------------


def _source_figures(sources: list[SourceResult]) -> list[dict[str, Any]]:
    return [
        {"source": s.source, "n": len(s.scores), "undefined": s.undefined, "mean": s.mean,
         "se": s.se, "histogram": s.histogram}
        for s in sources
    ]  # fmt: skip


def _response_row(r: ResponseResult) -> list[Any]:
    return [r.response.pk, r.sample, r.score, r.expected, r.failed, r.reused]


def _failure_figures(failures: list[tuple[Judgment, dict[str, Any]]]) -> dict[str, Any]:
    return {
        "total": len(failures),
        "head": [[j.pk, {"text": str(c.get("text", ""))}] for j, c in failures[:HEAD_FAILURES]],
        "groups": [asdict(g) for g in failure_groups(j.error for j, _ in failures)],
    }


def _figures_of(results: RunResults, chunks: list[list[int]]) -> dict[str, Any]:
    """The figures of results computed whole (a pairwise run, or a small one)."""
    return {
        "responses": {
            "total": len(results.responses),
            "head": [_response_row(r) for r in results.responses[:HEAD_RESPONSES]],
        },
        "sources": _source_figures(results.sources),
        "failures": _failure_figures(results.failures),
        "pairs": {
            "total": len(results.pairs),
            "head": [
                [p.a.pk, p.b.pk, p.sample, p.winner, p.consistent, p.failed, p.probability]
                for p in results.pairs[:HEAD_PAIRS]
            ],
        },
        "position": asdict(results.position) if results.position is not None else None,
        "chunks": chunks,
    }


def _chunk_ranges(run: Run) -> list[list[int]]:
    """[index, lowest, highest response id] of each chunk's units: which chunks to read
    for one response's verdicts."""
    ranges = []
    for index, units in (
        run.chunks.filter(retry=False).order_by("index").values_list("index", "units")
    ):
        ids = [u["r"] for u in units] + [u["o"] for u in units if u.get("o") is not None]
        if ids:
            ranges.append([index, min(ids), max(ids)])
    return ranges


def _graded_figures(run: Run) -> dict[str, Any]:
    """A graded run's figures read a chunk at a time: a prompt's units are consecutive (runs
    are planned in prompt order), so each prompt is scored once all its units are read and
    only its lean result (no verdicts) is kept."""
    judging_mode = mode_for(run.mode)
    everything: list[ResponseResult] = []
    failures: list[tuple[Judgment, dict[str, Any]]] = []
    chunks: list[list[int]] = []
    pending: list[Unit] = []
    prompt_of: dict[int, Response] = {}
    done_prompts: set[int] = set()

    def flush(units: list[Unit]) -> None:
        if not units:
            return
        # by key (its unique index), then the run's links of those: a join of the run's
        # links with the judgments' keys is planned over all of them, chunk after chunk
        keys = {key for u in units for _, key in judging_mode.result_slots(u)}
        read = ("id", "key", "met", "rating", "probability", "winner", "error", "response_id")
        judgments = {j.pk: j for j in Judgment.objects.filter(key__in=keys).only(*read)}
        links = RunJudgment.objects.filter(run_id=run.pk, judgment_id__in=judgments.keys())
        by_key = {
            judgments[pk].key: (judgments[pk], reused)
            for pk, reused in links.values_list("judgment_id", "reused")
        }
        everything.extend(
            graded_results(judging_mode, units, by_key, prompt_of, failures, with_verdicts=False)
        )
        done = {prompt_of[u.response_id].prompt_id for u in units}
        if done & done_prompts:
            raise RuntimeError("a prompt's units are not consecutive")
        done_prompts.update(done)
        for u in units:
            prompt_of.pop(u.response_id, None)

    rows = run.chunks.filter(retry=False).order_by("index").values_list("index", "units")
    for index, stored in rows.iterator(chunk_size=20):
        units = [Unit.from_stored(u) for u in stored]
        if not units:
            continue
        ids = {u.response_id for u in units}
        chunks.append([index, min(ids), max(ids)])
        missing = ids - prompt_of.keys()
        prompt_of.update(
            (r.pk, r)
            for r in Response.objects.filter(pk__in=missing).only("id", "prompt_id", "source")
        )
        pending.extend(units)
        last_prompt = prompt_of[pending[-1].response_id].prompt_id
        complete = [u for u in pending if prompt_of[u.response_id].prompt_id != last_prompt]
        pending = [u for u in pending if prompt_of[u.response_id].prompt_id == last_prompt]
        flush(complete)
    flush(pending)
    everything.sort(
        key=lambda r: (r.response.prompt_id, r.response.source, r.response.pk, r.sample)
    )
    return {
        "responses": {
            "total": len(everything),
            "head": [_response_row(r) for r in everything[:HEAD_RESPONSES]],
        },
        "sources": _source_figures(source_results(everything)),
        "failures": _failure_figures(failures),
        "pairs": {"total": 0, "head": []},
        "position": None,
        "chunks": chunks,
    }


def summary_figures(run: Run) -> dict[str, Any]:
    """Everything the run page shows of the run's results: JSON types only."""
    if mode_for(run.mode).compares_pairs:
        return _figures_of(run_results(run), _chunk_ranges(run))
    try:
        return _graded_figures(run)
    except RuntimeError:  # units not in prompt order: read whole
        return _figures_of(run_results(run), _chunk_ranges(run))


def summary_compute(*, run_id: int) -> RunSummary | None:
    """Compute and store the summary of a finished run (None for a run not found or not
    finished). Safe to repeat: it overwrites, and a run that changed meanwhile is stamped
    as read (the page sees it is stale)."""
    run = Run.objects.filter(pk=run_id).first()
    if run is None or not run.finished:
        return None
    stamp = run_stamp(run)
    started = time.perf_counter()
    figures = summary_figures(run)
    summary, _ = RunSummary.objects.update_or_create(
        run=run,
        defaults={"stamp": stamp, "figures": figures, "seconds": time.perf_counter() - started},
    )
    return summary


def summary_request(run_id: int) -> None:
    """Ask a worker for the summary once the caller's transaction commits."""
    from scoring.runs.tasks import run_summary

    transaction.on_commit(lambda: run_summary.apply_async((run_id,)))


def on_run_finished(sender: Any, run_id: int, **kwargs: Any) -> None:
    summary_request(run_id)


# --- reading --------------------------------------------------------------------------------


def _page_results(figures: dict[str, Any], rows: slice) -> PageResults:
    """The page's results from stored figures: the listed rows' responses and judgments in
    one query each; ``rows``: which rows of the responses' table."""
    head = figures["responses"]["head"][rows]
    pair_rows = figures["pairs"]["head"]
    failure_rows = figures["failures"]["head"]
    ids = {row[0] for row in head} | {x for row in pair_rows for x in row[:2]}
    responses = {
        r.pk: r
        for r in Response.objects.filter(pk__in=ids)
        .select_related("prompt")
        .only("id", "source", "prompt_id", "prompt__id", "prompt__external_id")
    }
    judgments = {
        j.pk: j
        for j in Judgment.objects.filter(pk__in=[row[0] for row in failure_rows])
        .select_related("response")
        .only("id", "error", "response_id", "response__id", "response__source")
    }
    listed = [
        ResponseResult(responses[r], sample, score, [], expected, failed, reused)
        for r, sample, score, expected, failed, reused in head
        if r in responses
    ]
    pairs = [
        PairResult(responses[a], responses[b], sample, winner, consistent, failed, probability)
        for a, b, sample, winner, consistent, failed, probability in pair_rows
        if a in responses and b in responses
    ]
    failures = [(judgments[j], c) for j, c in failure_rows if j in judgments]
    position = figures["position"]
    return PageResults(
        responses=Head(listed, figures["responses"]["total"]),
        sources=[
            PageSource(
                s["source"], Head([], s["n"]), s["undefined"], s["mean"], s["se"], s["histogram"]
            )
            for s in figures["sources"]
        ],  # fmt: skip
        failures=Head(failures, figures["failures"]["total"]),
        failure_groups=[FailureGroup(**g) for g in figures["failures"]["groups"]],
        pairs=Head(pairs, figures["pairs"]["total"]),
        position=pairwise.PositionBias(**position) if position is not None else None,
    )


def current_summary(run: Run) -> RunSummary | None:
    summary = RunSummary.objects.filter(run=run).first()
    return summary if summary is not None and summary.stamp == run_stamp(run) else None


def page_results(run: Run, rows: slice = slice(0, HEAD_RESPONSES)) -> PageResults | None:
    """The run page's results: stored when current; computed live for a run of up to
    ``LIVE_UNITS`` units (and stored once it is finished); otherwise None, a worker asked
    once for a finished run's summary (an unfinished large run shows its progress).
    ``rows``: the rows of the responses' table to list (of the first ``HEAD_RESPONSES``)."""
    summary = current_summary(run) if run.finished else None
    if summary is not None:
        return _page_results(summary.figures, rows)
    if run.total > LIVE_UNITS:
        if run.finished and cache.add(f"run-summary-asked:{run.pk}:{run_stamp(run)}", 1, 600):
            summary_request(run.pk)
        return None
    if run.finished:
        summary = summary_compute(run_id=run.pk)
        if summary is not None:
            return _page_results(summary.figures, rows)
    return _page_results(_figures_of(run_results(run), []), rows)


def response_chunks(run: Run, response_id: int) -> list[int] | None:
    """The chunks holding a response's units, from the current summary (None: unknown,
    read them all)."""
    summary = current_summary(run) if run.finished else None
    if summary is None or "chunks" not in summary.figures:
        return None
    return [i for i, low, high in summary.figures["chunks"] if low <= response_id <= high]
