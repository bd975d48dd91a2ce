"""A finished run's analytics, as plain JSON: per criterion (hit rate overall and per source,
saturation, discrimination, agreement with preference labels, judge noise, redundancy, and
the flags with their reasons), per rubric (signal-to-noise, tail accuracy), the leaderboard
of response sources (Bradley–Terry from the project's latest pairwise run and from the
preference labels, beside this run's mean scores, with Kendall's τ) and the judge's biases.
The statistics are ``scoring.engine.rubric_stats``'; this module gathers their inputs."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db.models.functions import Length

from annotation.prompts.models import PreferenceLabel, Response
from scoring.analytics.vector_store import stored_vectors
from scoring.engine import aggregate
from scoring.engine import rubric_stats as rs
from scoring.judges.models import text_hash
from scoring.runs.models import Run, RunJudgment
from scoring.runs.modes.base import Unit
from scoring.runs.modes.registry import mode_for
from scoring.runs.results import PairResult, RunResults, run_results

TAIL_SHARES = (0.10, 0.25, 0.50)
BOOTSTRAP = 200
# Flag thresholds: a criterion is worth a look past these.
WEAK_R = 0.05  # |point-biserial| below this, over MIN_RESPONSES or more: no signal
MIN_RESPONSES = 30
INCONSISTENT_BELOW = 0.5  # agrees with the labels on fewer than half of the informative pairs
MIN_PAIRS = 5
NOISY_ABOVE = 0.2  # flips between samples on more than a fifth of the responses
MIN_REPEATS = 10
MIN_CO_JUDGED = 10  # responses two criteria must share to be called redundant
MIN_SATURATED = 3  # responses a criterion must have been judged on to be called saturated


@dataclass(frozen=True)
class _Resp:
    pk: int
    source: str
    prompt_id: int
    length: int


@dataclass(frozen=True)
class _Verdict:
    met: bool | None
    error: str


@dataclass
class _Result:
    response: _Resp
    sample: int
    score: float | None
    verdicts: list[tuple[dict[str, Any], _Verdict | None]]


@dataclass
class _Graded:
    """A graded run's verdicts, read lean (ids and booleans, no explanations)."""

    responses: list[_Result]


@dataclass(frozen=True)
class _Label:
    chosen_id: int
    rejected_id: int
    chosen_source: str
    rejected_source: str
    chosen_length: int
    rejected_length: int


def _graded(run: Run) -> _Graded:
    """The verdicts of a per-criterion or grouped run per (response, sample), with each
    response's HealthBench score (None when a verdict is missing or failed), in a few
    queries of plain values: fast at 100k judgments."""
    judging_mode = mode_for(run.mode)
    units = [
        Unit.from_stored(u)
        for c in run.chunks.filter(retry=False).order_by("index")
        for u in c.units
    ]
    verdicts = {
        key: _Verdict(met, "failed" if error else "")
        for key, met, error in RunJudgment.objects.filter(run=run).values_list(
            "judgment__key", "judgment__met", "judgment__error"
        )
    }
    ids = {u.response_id for u in units}
    rows = Response.objects.filter(pk__in=ids).annotate(length=Length("content"))
    responses = {pk: _Resp(pk, source, prompt, length) for pk, source, prompt, length in rows.values_list("pk", "source", "prompt_id", "length")}  # fmt: skip
    results: dict[tuple[int, int], _Result] = {}
    for unit in units:
        result = results.setdefault(
            (unit.response_id, unit.sample),
            _Result(responses[unit.response_id], unit.sample, None, []),
        )
        for criterion, key in judging_mode.result_slots(unit):
            result.verdicts.append((criterion, verdicts.get(key)))
    for result in results.values():
        if all(v is not None and not v.error and v.met is not None for _, v in result.verdicts):
            result.score = aggregate.healthbench_score(
                [c["points"] for c, _ in result.verdicts], [v.met for _, v in result.verdicts if v]
            )
    return _Graded(sorted(results.values(), key=lambda r: (r.response.prompt_id, r.response.source, r.response.pk, r.sample)))  # fmt: skip


def _lean(results: RunResults) -> _Graded:
    """A holistic run's results in the same shape (scores, no per-criterion verdicts)."""
    return _Graded([
        _Result(_Resp(r.response.pk, r.response.source, r.response.prompt_id, len(r.response.content)), r.sample, r.score, [])
        for r in results.responses
    ])  # fmt: skip


def _all_labels(project_id: int) -> list[_Label]:
    rows = PreferenceLabel.objects.filter(prompt__project_id=project_id).annotate(
        chosen_length=Length("chosen__content"), rejected_length=Length("rejected__content")
    )
    return [
        _Label(*row)
        for row in rows.values_list(
            "chosen_id", "rejected_id", "chosen__source", "rejected__source", "chosen_length", "rejected_length"
        )
    ]  # fmt: skip


def stat(value: rs.Stat) -> dict[str, Any]:
    return {"value": value.value, "n": value.n, "why": value.why}


@dataclass
class _Criterion:
    key: str
    text: str
    points: float
    version: int | None
    verdicts: list[float] = field(default_factory=list)  # one per (response, sample)
    rests: list[float] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    first: dict[int, float] = field(default_factory=dict)  # response → sample-0 verdict
    second: dict[int, float] = field(default_factory=dict)  # response → sample-1 verdict


def _verdict(judgment: Any) -> float:
    if judgment is None or judgment.error or judgment.met is None:
        return math.nan
    return 1.0 if judgment.met else 0.0


def _criteria(results: _Graded) -> dict[str, _Criterion]:
    """Each criterion's verdicts with the score of its response on the rest of the rubric."""
    criteria: dict[str, _Criterion] = {}
    for result in results.responses:
        if not result.verdicts:
            continue
        points = np.asarray([float(c["points"]) for c, _ in result.verdicts])
        values = np.asarray([_verdict(j) for _, j in result.verdicts])
        rests = rs.rest_scores(points, values)
        for (c, _), v, rest in zip(result.verdicts, values.tolist(), rests.tolist(), strict=True):
            entry = criteria.setdefault(
                c["key"], _Criterion(c["key"], c["text"], float(c["points"]), c.get("version"))
            )
            entry.verdicts.append(v)
            entry.rests.append(rest)
            entry.sources.append(result.response.source)
            if result.sample == 0:
                entry.first[result.response.pk] = v
            elif result.sample == 1:
                entry.second[result.response.pk] = v
    return criteria


def _co_judged(results: _Graded) -> dict[tuple[str, str], list[int]]:
    """2×2 counts (both met, first only, second only, neither) of every two criteria judged
    on the same responses (sample 0)."""
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for result in results.responses:
        if result.sample:
            continue
        known = sorted(
            (c["key"], v) for c, j in result.verdicts if not math.isnan(v := _verdict(j))
        )
        for i, (a, va) in enumerate(known):
            for b, vb in known[i + 1 :]:
                cell = counts[(a, b)]
                cell[0 if va and vb else 1 if va else 2 if vb else 3] += 1
    return counts


def _labels(labels: list[_Label], response_ids: set[int]) -> list[_Label]:
    return [
        label
        for label in labels
        if label.chosen_id in response_ids and label.rejected_id in response_ids
    ]


def _flags(entry: dict[str, Any], redundant: list[dict[str, Any]]) -> list[dict[str, str]]:
    flags = []
    rate, r = entry["hit_rate"], entry["discrimination"]
    if entry["saturated"] and entry["responses"] >= MIN_SATURATED:
        flags.append({"kind": "saturated", "reason": f"Met by {rate['value']:.0%} of the "
                      f"{entry['responses']} responses judged: it cannot tell them apart."})  # fmt: skip
    if r["value"] is not None and r["n"] >= MIN_RESPONSES:
        wrong_way = r["value"] < 0 if entry["points"] > 0 else r["value"] > 0
        if wrong_way and abs(r["value"]) >= WEAK_R:
            flags.append({"kind": "reversed", "reason": f"Goes against the rest of the rubric "
                          f"(r = {r['value']:+.2f}): it rewards the responses the rubric scores lower."})  # fmt: skip
        elif abs(r["value"]) < WEAK_R:
            flags.append({"kind": "no_signal", "reason": f"Unrelated to the rest of the rubric "
                          f"(r = {r['value']:+.2f} over {r['n']} responses)."})  # fmt: skip
    labels = entry["label_agreement"]
    if (
        labels["value"] is not None
        and labels["n"] >= MIN_PAIRS
        and labels["value"] < INCONSISTENT_BELOW
    ):
        flags.append({"kind": "inconsistent", "reason": f"Favours the chosen response in only "
                      f"{labels['value']:.0%} of {labels['n']} labelled pairs it separates."})  # fmt: skip
    flips = entry["noise"]["flips"]
    if flips["value"] is not None and flips["n"] >= MIN_REPEATS and flips["value"] > NOISY_ABOVE:
        flags.append({"kind": "noisy", "reason": f"The judge's verdict flips between samples on "
                      f"{flips['value']:.0%} of {flips['n']} responses."})  # fmt: skip
    judges = entry["noise"].get("judges_flips", {})
    if (
        judges.get("value") is not None
        and judges["n"] >= MIN_REPEATS
        and judges["value"] > NOISY_ABOVE
    ):
        flags.append({"kind": "noisy", "reason": f"Two judges disagree on {judges['value']:.0%} of "
                      f"the {judges['n']} responses both graded."})  # fmt: skip
    for pair in redundant:
        if entry["key"] in (pair["a"], pair["b"]):
            other = pair["b_text"] if entry["key"] == pair["a"] else pair["a_text"]
            flags.append({"kind": "redundant", "reason": f"Says the same as “{other}” (same "
                          f"verdict on {pair['agreement']:.0%} of {pair['n']} responses)."})  # fmt: skip
    return flags


def _criterion_figures(
    results: _Graded, labels: list[_Label], other: _Graded | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    criteria = _criteria(results)
    theirs = _criteria(other) if other is not None else {}
    redundant: list[dict[str, Any]] = []
    for (a, b), (n11, n10, n01, n00) in sorted(_co_judged(results).items()):
        n = n11 + n10 + n01 + n00
        agreement = (n11 + n00) / n if n else 0.0
        if n >= MIN_CO_JUDGED and agreement >= rs.REDUNDANT_AGREEMENT:
            redundant.append({
                "a": a, "b": b, "a_text": criteria[a].text, "b_text": criteria[b].text,
                "agreement": agreement, "n": n, "phi": stat(rs.phi_from_counts(n11, n10, n01, n00)),
            })  # fmt: skip
    redundant.sort(key=lambda p: (-p["agreement"], p["a"], p["b"]))
    vectors = stored_vectors(
        {t for p in redundant for t in (p["a_text"].strip(), p["b_text"].strip())}
    )
    for pair in redundant:
        va, vb = (vectors.get(text_hash(pair[k].strip())) for k in ("a_text", "b_text"))
        pair["cosine"] = (
            stat(rs.Stat(float(np.dot(va, vb)), 2))
            if va is not None and vb is not None
            else stat(rs.Stat.undefined("texts not embedded yet: the editor's Near duplicates panel embeds them"))
        )  # fmt: skip
    out: list[dict[str, Any]] = []
    for c in criteria.values():
        verdicts = np.asarray(c.verdicts)
        rate = rs.hit_rate(verdicts)
        by_source = {}
        sources = np.asarray(c.sources)
        for source in sorted(set(c.sources)):
            by_source[source] = stat(rs.hit_rate(verdicts[sources == source]))
        pairs = [(label.chosen_id, label.rejected_id) for label in labels if label.chosen_id in c.first and label.rejected_id in c.first]  # fmt: skip
        index = {rid: i for i, rid in enumerate(c.first)}
        first = np.asarray(list(c.first.values()))
        consistency = rs.label_agreement(first, c.points, [(index[a], index[b]) for a, b in pairs])
        if c.second:
            shared = [rid for rid in c.second if rid in c.first]
            noise = rs.judge_noise(
                np.asarray([c.first[r] for r in shared]), np.asarray([c.second[r] for r in shared])
            )
            noise_figures = {"flips": stat(noise.flips), "kappa": stat(noise.kappa)}
        else:
            none = stat(rs.Stat.undefined("one sample per response: run with samples ≥ 2"))
            noise_figures = {"flips": none, "kappa": none}
        if other is None:
            judges = stat(rs.Stat.undefined("no other judge's run graded these responses"))
            noise_figures.update(judges_flips=judges, judges_kappa=judges)
        else:
            mine, their = c.first, theirs[c.key].first if c.key in theirs else {}
            shared = [rid for rid in mine if rid in their]
            between = rs.judge_noise(
                np.asarray([mine[r] for r in shared]), np.asarray([their[r] for r in shared])
            )
            noise_figures.update(judges_flips=stat(between.flips), judges_kappa=stat(between.kappa))
        entry = {
            "key": c.key,
            "text": c.text,
            "points": c.points,
            "version": c.version,
            "hit_rate": stat(rate),
            "responses": len(c.first) or len(c.verdicts),
            "by_source": by_source,
            "saturated": rs.saturated(rate),
            "discrimination": stat(rs.pearson(verdicts, np.asarray(c.rests))),
            "label_agreement": stat(consistency),
            "noise": noise_figures,
        }
        entry["flags"] = _flags(entry, redundant)
        out.append(entry)
    return out, redundant


def _scores(results: _Graded) -> dict[int, dict[int, float]]:
    """sample → response → score (defined scores only)."""
    out: dict[int, dict[int, float]] = defaultdict(dict)
    for r in results.responses:
        if r.score is not None:
            out[r.sample][r.response.pk] = r.score
    return out


def _snr(results: _Graded, seed: int) -> dict[str, Any]:
    by_source: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in results.responses:
        if r.score is not None:
            by_source[r.response.source][r.sample].append(r.score)
    samples = {s for per in by_source.values() for s in per}
    if len(samples) >= 2:
        measurements = {
            source: [float(np.mean(v)) for _, v in sorted(per.items())]
            for source, per in by_source.items()
        }
        figures = rs.signal_to_noise(measurements, "samples")
    else:
        first = {source: per.get(0, []) for source, per in by_source.items()}
        figures = rs.signal_to_noise(rs.bootstrap_source_means(first, BOOTSTRAP, seed), "bootstrap")
    return {
        "signal": stat(figures.signal), "noise": stat(figures.noise), "snr": stat(figures.snr),
        "means": figures.means, "noise_from": figures.noise_from,
    }  # fmt: skip


def _tail(scores: dict[int, float], labels: list[_Label]) -> dict[str, Any]:
    pairs = [
        (scores[label.chosen_id], scores[label.rejected_id])
        for label in labels
        if label.chosen_id in scores and label.rejected_id in scores
    ]
    values = list(scores.values())
    out = {"all": stat(rs.tail_accuracy(pairs, values, 1.0))}
    for q in TAIL_SHARES:
        out[f"{q:.2f}"] = stat(rs.tail_accuracy(pairs, values, q))
    return out


def _board(comparisons: list[tuple[str, str, float]], seed: int) -> list[dict[str, Any]]:
    names = sorted({s for a, b, _ in comparisons for s in (a, b)})
    index = {s: i for i, s in enumerate(names)}
    data = [(index[a], index[b], outcome) for a, b, outcome in comparisons]
    board = rs.leaderboard(names, data, replicates=BOOTSTRAP, seed=seed)
    return [
        {"source": s.source, "theta": s.theta, "low": s.low, "high": s.high, "comparisons": s.comparisons}
        for s in board
    ]  # fmt: skip


def _pair_comparisons(pairs: list[PairResult]) -> list[tuple[str, str, float]]:
    outcome = {"a": 1.0, "b": 0.0, "tie": 0.5}
    return [
        (p.a.source, p.b.source, outcome[p.winner])
        for p in pairs
        if not p.failed and p.winner in outcome and p.a.source != p.b.source
    ]


def _with_tau(board: list[dict[str, Any]], means: dict[str, float]) -> dict[str, Any]:
    both = [row for row in board if row["source"] in means]
    tau = rs.kendall_tau_b([row["theta"] for row in both], [means[row["source"]] for row in both])
    return {"board": board, "tau": stat(tau), "sources_in_both": len(both)}


def _second_judge(run: Run) -> Run | None:
    """The project's latest other finished per-criterion or grouped run by another judge
    (model or template): its verdicts on the same responses measure judge-to-judge noise."""
    if run.mode not in (Run.Mode.PER_CRITERION, Run.Mode.GROUPED):
        return None
    return (
        Run.objects.without_probes()
        .filter(project_id=run.project_id, status=Run.Status.DONE,
                mode__in=[Run.Mode.PER_CRITERION, Run.Mode.GROUPED])
        .exclude(pk=run.pk).exclude(judge_hash=run.judge_hash)
        .order_by("-finished_at", "-pk").first()
    )  # fmt: skip


def latest_pairwise_run(run: Run) -> Run | None:
    if mode_for(run.mode).compares_pairs:
        return run
    return (
        Run.objects.without_probes()
        .filter(project_id=run.project_id, mode=Run.Mode.PAIRWISE, status=Run.Status.DONE)
        .order_by("-finished_at", "-pk")
        .first()
    )  # fmt: skip


def run_figures(run: Run) -> dict[str, Any]:
    """Every figure of the Analytics tab for ``run``: JSON types only."""
    judging_mode = mode_for(run.mode)
    pair_results: RunResults | None = None
    if judging_mode.compares_pairs:
        pair_results = run_results(run)
        results = _Graded([])
    elif run.mode == Run.Mode.HOLISTIC:
        results = _lean(run_results(run))
    else:
        results = _graded(run)
    seed = run.pk
    figures: dict[str, Any] = {"run": run.pk, "mode": run.mode, "samples": run.samples}
    scores = _scores(results)
    first = scores.get(0, {})
    response_ids = {r.response.pk for r in results.responses}
    if pair_results is not None:
        response_ids |= {x.pk for p in pair_results.pairs for x in (p.a, p.b)}
    all_labels = _all_labels(run.project_id)
    labels = _labels(all_labels, response_ids)
    figures["labels"] = len(labels)
    second = _second_judge(run) if results.responses else None
    figures["second_judge"] = {"run": second.pk, "model": second.model} if second else None
    if any(r.verdicts for r in results.responses):
        other = _graded(second) if second is not None else None
        figures["criteria"], figures["redundant"] = _criterion_figures(results, labels, other)
        figures["criteria_why"] = ""
    else:
        figures["criteria"], figures["redundant"] = [], []
        figures["criteria_why"] = (
            "This run compares pairs: per-criterion figures come from a per-criterion or grouped run."
            if judging_mode.compares_pairs
            else "This run grades responses as a whole: per-criterion figures come from a "
            "per-criterion or grouped run."
        )
    figures["responses"] = len(first)
    figures["snr"] = _snr(results, seed) if results.responses else None
    figures["tail"] = _tail(first, labels) if results.responses else None
    figures["mean_scores"] = figures["snr"]["means"] if figures["snr"] else {}

    pairwise_run = latest_pairwise_run(run)
    if pairwise_run is not None and pairwise_run is not run:
        pair_results = run_results(pairwise_run)
    leaderboard: dict[str, Any] = {}
    if pair_results is not None and pairwise_run is not None:
        comparisons = _pair_comparisons(pair_results.pairs)
        leaderboard["pairwise"] = {"run": pairwise_run.pk, **_with_tau(_board(comparisons, seed), figures["mean_scores"])}  # fmt: skip
    else:
        leaderboard["pairwise"] = None
    expert = [(label.chosen_source, label.rejected_source, 1.0) for label in all_labels if label.chosen_source != label.rejected_source]  # fmt: skip
    leaderboard["labels"] = (
        _with_tau(_board(expert, seed), figures["mean_scores"]) if expert else None
    )
    figures["leaderboard"] = leaderboard
    figures["bias"] = _bias(results, first, pairwise_run, pair_results, all_labels)
    return figures


def _bias(
    results: _Graded,
    first: dict[int, float],
    pairwise_run: Run | None,
    pair_results: RunResults | None,
    labels: list[_Label],
) -> dict[str, Any]:
    lengths = {r.response.pk: r.response.length for r in results.responses}
    ids = [rid for rid in first if rid in lengths]
    out: dict[str, Any] = {
        "length_score": stat(rs.length_bias([lengths[i] for i in ids], [first[i] for i in ids])),
        "scatter": [[lengths[i], first[i]] for i in ids[:2000]],
    }
    if pair_results is not None and pairwise_run is not None:
        position = pair_results.position
        out["position"] = {
            "run": pairwise_run.pk,
            "pairs": position.pairs if position else 0,
            "consistent": stat(
                rs.Stat(1 - position.inconsistent_share, position.pairs)
                if position and position.inconsistent_share is not None
                else rs.Stat.undefined("no pair judged in both orders")
            ),
            "first_shown": stat(
                rs.Stat(position.first_shown_share, position.inconsistent)
                if position and position.first_shown_share is not None
                else rs.Stat.undefined("no position-inconsistent pair to tell")
            ),
        }
        out["longer_wins_judge"] = stat(rs.longer_wins([
            (len(p.a.content), len(p.b.content), p.winner) for p in pair_results.pairs if not p.failed
        ]))  # fmt: skip
    else:
        out["position"] = None
        out["longer_wins_judge"] = stat(rs.Stat.undefined("no pairwise run in this project"))
    out["longer_wins_labels"] = stat(rs.longer_wins([
        (label.chosen_length, label.rejected_length, "a") for label in labels
    ]) if labels else rs.Stat.undefined("no preference labels in this project"))  # fmt: skip
    return out
