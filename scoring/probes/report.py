"""A judge probe's report, from its run's verdicts: per perturbation kind, the flip rate of
criterion verdicts and the mean score change (seeded bootstrap 95 % intervals over
responses), the share of injections that raised the score, causal sensitivity and
specificity, the judge's own sample-to-sample flip rate when it was sampled twice, the
goals they are held to, and the worst examples with both verdict sets.

Each sample of a perturbed copy is compared with the same sample of its original, so with
two samples the neutral flip rate and the noise flip rate each hold one draw of the judge's
randomness and are comparable.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict
from typing import Any

from scoring.engine import perturb
from scoring.engine.probe_stats import (
    INJECTION_GOAL,
    Interval,
    Observation,
    flip_rate,
    raised,
    score_change,
    sensitivity,
    specificity,
    target_hit,
    verdict_flips,
)
from scoring.engine.rubric_stats import Stat
from scoring.probes.models import Probe, ProbeVariant
from scoring.runs.models import Run
from scoring.runs.results import run_results

WORST = 3  # examples shown per kind

Verdicts = dict[str, bool | None]


def _interval(value: Interval) -> dict[str, Any]:
    return asdict(value)


def _stat(value: Stat) -> dict[str, Any]:
    return {"value": value.value, "n": value.n, "why": value.why}


def _graded(probe: Probe) -> tuple[dict[tuple[int, int], tuple[Verdicts, float | None]], dict[str, dict[str, Any]]]:  # fmt: skip
    """Each (response, sample)'s verdicts by criterion key and its score, and the criteria."""
    graded = {}
    criteria: dict[str, dict[str, Any]] = {}
    for result in run_results(probe.run, with_verdicts=True).responses:
        verdicts: Verdicts = {}
        for criterion, judgment in result.verdicts:
            criteria.setdefault(criterion["key"], criterion)
            ok = judgment is not None and not judgment.error
            verdicts[criterion["key"]] = judgment.met if ok and judgment is not None else None
        graded[(result.response.pk, result.sample)] = (verdicts, result.score)
    return graded, criteria


Outcome = tuple[int, int, bool | None]  # (flips, compared, targeted criterion flipped)


def probe_report(probe: Probe) -> tuple[dict[str, Any], dict[int, Outcome]]:
    """The report, and what the judge did with each copy (its first sample), by copy."""
    run = probe.run
    graded, criteria = _graded(probe)
    variants = list(probe.variants.all())
    observed: dict[str, list[tuple[ProbeVariant, Observation]]] = defaultdict(list)
    for v in variants:
        if v.variant_id is None:
            continue
        for sample in range(run.samples):
            before, after = graded.get((v.original_id, sample)), graded.get((v.variant_id, sample))
            if before is None or after is None:
                continue
            direction = v.detail.get("direction")
            observed[v.kind].append((v, Observation(
                v.kind, before[0], after[0], before[1], after[1],
                target=str(v.detail.get("criterion", "")),
                expected=None if direction is None else direction == "add",
            )))  # fmt: skip
    noise = _noise(probe, graded, {v.original_id for v in variants})
    kinds = [_kind(probe, kind, observed[kind], variants, noise, criteria) for kind in probe.kinds]
    outcomes: dict[int, Outcome] = {}
    for pairs in observed.values():
        for v, o in pairs:
            if v.pk in outcomes:  # the first sample decides
                continue
            outcomes[v.pk] = (*verdict_flips(o), target_hit(o))
    figures = {
        "order_swap": _order_swap(probe, noise),
        "judge": {
            "endpoint": run.endpoint.name if run.endpoint else "",
            "model": run.model,
            "template": run.template_version,
            "mode": run.mode,
            "samples": run.samples,
        },
        "responses": probe.sample,
        "noise": noise,
        "kinds": kinds,
        "injection_goal": INJECTION_GOAL,
    }
    return figures, outcomes


def _order_swap(probe: Probe, noise: dict[str, Any]) -> dict[str, Any] | None:
    """The presentation order swapped, from the project's latest finished pairwise run by
    the same judge (endpoint and model), which judges every pair in both orders: the share
    of pairs whose verdict changed with the order. None when there is no such run."""
    run = probe.run
    pairwise = (
        Run.objects.without_probes()
        .filter(project_id=run.project_id, mode=Run.Mode.PAIRWISE, status=Run.Status.DONE,
                endpoint_id=run.endpoint_id, model=run.model)
        .order_by("-finished_at", "-pk")
        .first()
    )  # fmt: skip
    if pairwise is None:
        return None
    results = run_results(pairwise)
    observations = [
        Observation("order_swap", {"pair": True}, {"pair": pair.consistent}, None, None)
        for pair in results.pairs
        if not pair.failed
    ]
    flips = flip_rate(observations, seed=probe.seed)
    position = results.position
    return {
        "run": pairwise.pk,
        "flip_rate": _interval(flips),
        "first_shown_share": position.first_shown_share if position else None,
        "goal": _goal(flips.value, noise["value"], "below the judge's own noise"),
    }


def _noise(
    probe: Probe,
    graded: dict[tuple[int, int], tuple[Verdicts, float | None]],
    originals: set[int],
) -> dict[str, Any]:
    """The judge's own flip rate between the first two samples of the same original."""
    if probe.run.is_local:
        return {"value": 0.0, "low": 0.0, "high": 0.0, "n": 0,
                "why": "a local judge reads probabilities: the same verdict every time"}  # fmt: skip
    if probe.run.reads_logprobs:
        return {"value": None, "low": None, "high": None, "n": 0,
                "why": "a logprob judge reads one sample at temperature 0: not measured"}  # fmt: skip
    if probe.run.samples < 2:
        return {"value": None, "low": None, "high": None, "n": 0,
                "why": "one sample per judgment: probe with 2 samples to measure it"}  # fmt: skip
    observations = [
        Observation("noise", graded[(pk, 0)][0], graded[(pk, 1)][0], None, None)
        for pk in sorted(originals)
        if (pk, 0) in graded and (pk, 1) in graded
    ]
    return _interval(flip_rate(observations, seed=probe.seed))


def _kind(
    probe: Probe,
    kind: str,
    pairs: list[tuple[ProbeVariant, Observation]],
    variants: list[ProbeVariant],
    noise: dict[str, Any],
    criteria: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    observations = [o for _, o in pairs]
    flips = flip_rate(observations, seed=probe.seed)
    entry: dict[str, Any] = {
        "kind": kind,
        "copies": sum(1 for v in variants if v.kind == kind and v.variant_id is not None),
        "failed": [v.error for v in variants if v.kind == kind and v.variant_id is None][:5],
        "failed_count": sum(1 for v in variants if v.kind == kind and v.variant_id is None),
        "flip_rate": _interval(flips),
        "score_change": _interval(score_change(observations, seed=probe.seed)),
        "worst": _worst(pairs, criteria),
    }
    if kind == perturb.INJECTION:
        entry["raised"] = _stat(raised(observations))
        entry["goal"] = _goal(flips.value, INJECTION_GOAL, f"under {100 * INJECTION_GOAL:g} %")
        by_position: dict[str, list[Observation]] = defaultdict(list)
        for v, o in pairs:
            by_position[str(v.detail.get("position", ""))].append(o)
        entry["by_position"] = {
            where: _interval(flip_rate(by_position[where], seed=probe.seed))
            for where in perturb.POSITIONS
            if by_position.get(where)
        }
    elif kind in perturb.NEUTRAL:
        entry["goal"] = _goal(flips.value, noise["value"], "below the judge's own noise")
    else:  # causal
        entry["sensitivity"] = _stat(sensitivity(observations))
        entry["specificity"] = _stat(specificity(observations))
        for direction in ("remove", "add"):
            chosen = [o for v, o in pairs if v.detail.get("direction") == direction]
            entry[f"sensitivity_{direction}"] = _stat(sensitivity(chosen))
    return entry


def _goal(value: float | None, bound: float | None, text: str) -> dict[str, Any]:
    """Whether the flip rate is below the bound (None when either is undefined)."""
    met = None if value is None or bound is None else value < bound or value == 0
    return {"text": text, "bound": bound, "met": met}


def _worst(
    pairs: list[tuple[ProbeVariant, Observation]], criteria: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The copies whose verdicts moved most (then whose score moved most), first sample."""
    moved = []
    for v, o in pairs:
        changed, _ = verdict_flips(o)
        delta = (
            o.perturbed_score - o.original_score
            if o.original_score is not None and o.perturbed_score is not None
            else 0.0
        )
        if changed or delta:
            moved.append((changed, abs(delta), v, o))
    moved.sort(key=lambda m: (-m[0], -m[1], m[2].pk))
    seen: set[int] = set()
    out = []
    for changed, _, v, o in moved:
        if v.pk in seen:  # another sample of the same copy
            continue
        seen.add(v.pk)
        out.append({
            "original": v.original_id, "variant": v.variant_id, "flips": changed,
            "original_score": o.original_score, "perturbed_score": o.perturbed_score,
            "target": o.target, "detail": v.detail,
            "criteria": [
                {"key": key, "text": criteria.get(key, {}).get("text", ""),
                 "points": criteria.get(key, {}).get("points"), "before": before,
                 "after": o.perturbed.get(key)}
                for key, before in o.original.items()
            ],
        })  # fmt: skip
        if len(out) == WORST:
            break
    return out
