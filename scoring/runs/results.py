"""A run's results, computed from its units and judgments: each response's score with its
verdicts, each source's clipped mean with a bootstrap standard error and distribution,
the failures, and for pairwise runs the merged verdicts of both orders.

Scores follow the published formulas in ``scoring.engine.aggregate``; a response with a
failed judgment has no score (a failure is never read as "not met").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, cast

from annotation.prompts.models import Response
from scoring.engine import aggregate, pairwise
from scoring.runs.models import Judgment, Run, RunJudgment
from scoring.runs.modes.base import JudgingMode, Unit
from scoring.runs.modes.registry import mode_for

BINS = 10


@dataclass
class ResponseResult:
    response: Response
    sample: int
    score: float | None
    verdicts: list[tuple[dict[str, Any], Judgment | None]] = field(default_factory=list)
    # A local judge's continuous score: the HealthBench score in expectation over P(met).
    expected: float | None = None
    failed: int = 0
    reused: int = 0


@dataclass
class SourceResult:
    source: str
    scores: list[float]
    undefined: int
    mean: float | None
    se: float | None
    histogram: list[int]


@dataclass
class PairResult:
    a: Response
    b: Response
    sample: int
    winner: str  # "a", "b" or "tie"
    consistent: bool
    failed: bool
    # A local judge's P(a is better), both orders averaged: (P_ab(A) + 1 − P_ba(A)) / 2.
    probability: float | None = None


@dataclass
class RunResults:
    responses: list[ResponseResult]
    sources: list[SourceResult]
    failures: list[tuple[Judgment, dict[str, Any]]]
    pairs: list[PairResult]
    position: pairwise.PositionBias | None


def _units(run: Run, chunk_indexes: Collection[int] | None = None) -> list[Unit]:
    """The run's units once each (retry chunks repeat units of earlier chunks);
    ``chunk_indexes``: those of these chunks only."""
    chunks = run.chunks.filter(retry=False).order_by("index")
    if chunk_indexes is not None:
        chunks = chunks.filter(index__in=chunk_indexes)
    return [Unit.from_stored(u) for c in chunks for u in c.units]


def run_results(
    run: Run,
    *,
    with_verdicts: bool = False,
    response_ids: set[int] | None = None,
    chunk_indexes: Collection[int] | None = None,
) -> RunResults:
    """``response_ids``: only these responses' results (one prompt's, for its editor);
    ``chunk_indexes``: the chunks that hold their units, when the caller knows them (a run's
    stored summary does), so that the other chunks are not read."""
    units = _units(run, chunk_indexes)
    links = RunJudgment.objects.filter(run=run).select_related("judgment__response")
    if response_ids is not None:
        units = [u for u in units if u.response_id in response_ids]
        links = links.filter(judgment__response_id__in=response_ids)
    judging_mode = mode_for(run.mode)
    by_key = {link.judgment.key: (link.judgment, link.reused) for link in links}
    ids = {u.response_id for u in units} | {u.other_id for u in units if u.other_id is not None}
    responses = {r.pk: r for r in Response.objects.filter(pk__in=ids).select_related("prompt")}
    failures: list[tuple[Judgment, dict[str, Any]]] = []
    if judging_mode.compares_pairs:
        pairs, verdicts = _pairs(units, by_key, responses, failures)
        return RunResults([], [], failures, pairs, pairwise.position_bias(verdicts))
    ordered = graded_results(
        judging_mode, units, by_key, responses, failures, with_verdicts=with_verdicts
    )
    return RunResults(ordered, source_results(ordered), failures, [], None)


def graded_results(
    judging_mode: JudgingMode,
    units: list[Unit],
    by_key: dict[str, tuple[Judgment, bool]],
    responses: dict[int, Response],
    failures: list[tuple[Judgment, dict[str, Any]]],
    *,
    with_verdicts: bool,
) -> list[ResponseResult]:
    """Each (response, sample)'s score of a graded run, in the page's order, from
    ``units`` (every unit of those responses) and their judgments by key; the failed
    judgments are appended to ``failures`` in unit order."""
    results: dict[tuple[int, int], ResponseResult] = {}
    for unit in units:
        slot = (unit.response_id, unit.sample)
        result = results.setdefault(
            slot, ResponseResult(responses[unit.response_id], unit.sample, None)
        )
        for criterion, key in judging_mode.result_slots(unit):
            judgment, reused = by_key.get(key, (None, False))
            result.verdicts.append((criterion, judgment))
            _count(result, judgment, reused, failures, criterion)
    for result in results.values():
        result.score = _score(judging_mode, result)
        result.expected = (
            judging_mode.expected(result.verdicts) if result.score is not None else None
        )
        if not with_verdicts:
            result.verdicts = []
    return sorted(
        results.values(),
        key=lambda r: (r.response.prompt_id, r.response.source, r.response.pk, r.sample),
    )


def _count(
    result: ResponseResult,
    judgment: Judgment | None,
    reused: bool,
    failures: list[tuple[Judgment, dict[str, Any]]],
    criterion: dict[str, Any],
) -> None:
    if judgment is not None and judgment.error:
        result.failed += 1
        failures.append((judgment, criterion))
    result.reused += int(reused)


def _score(judging_mode: JudgingMode, result: ResponseResult) -> float | None:
    if any(j is None or j.error for _, j in result.verdicts):
        return None  # missing or failed: undefined, never "not met"
    return judging_mode.score(result.verdicts)


def source_results(results: list[ResponseResult]) -> list[SourceResult]:
    grouped: dict[str, list[float | None]] = defaultdict(list)
    for r in results:
        grouped[r.response.source].append(r.score)
    out = []
    for source, scores in sorted(grouped.items()):
        defined = [s for s in scores if s is not None]
        histogram = [0] * BINS
        for s in defined:
            histogram[min(BINS - 1, max(0, int(min(max(s, 0.0), 1.0) * BINS)))] += 1
        out.append(
            SourceResult(
                source,
                defined,
                len(scores) - len(defined),
                aggregate.mean_clipped(defined),
                aggregate.bootstrap_se(defined),
                histogram,
            )
        )
    return out


def _pairs(
    units: list[Unit],
    by_key: dict[str, tuple[Judgment, bool]],
    responses: dict[int, Response],
    failures: list[tuple[Judgment, dict[str, Any]]],
) -> tuple[list[PairResult], list[tuple[Any, Any]]]:
    """Merged pairs, and the (first, second) verdicts of the complete ones."""
    orders: dict[tuple[int, int, int], dict[str, Judgment | None]] = defaultdict(dict)
    for unit in units:
        assert unit.pair is not None, "a pairwise unit names its pair"
        a, b = unit.pair
        judgment = by_key.get(unit.keys[0], (None, False))[0]
        orders[(a, b, unit.sample)][unit.order] = judgment
        if judgment is not None and judgment.error:
            failures.append((judgment, {"text": f"pair {a}–{b}, order {unit.order}"}))
    out, verdicts = [], []
    for (a, b, sample), both in sorted(orders.items()):
        ab, ba = both.get("ab"), both.get("ba")
        if ab is None or ba is None or ab.error or ba.error:
            out.append(PairResult(responses[a], responses[b], sample, "tie", False, True))
            continue
        winner, consistent = pairwise.merge_orders(
            cast(pairwise.Verdict, ab.winner), cast(pairwise.Verdict, ba.winner)
        )
        probability = None
        if ab.probability is not None and ba.probability is not None:
            probability = (ab.probability + 1 - ba.probability) / 2
        out.append(
            PairResult(responses[a], responses[b], sample, winner, consistent, False, probability)
        )
        verdicts.append((ab.winner, ba.winner))
    return out, verdicts
