"""The figures of a judge robustness probe (plain Python and numpy): how often the verdicts
move under each kind of perturbation, how the score moves, how often an injected instruction
raised it, and for causal rewrites whether the targeted criterion flipped (sensitivity) while
the others stayed put (specificity). Intervals are seeded bootstrap 95 % intervals over the
probed responses.

A probe observation pairs one response's verdicts (criterion key → met, None when missing)
and score with those of one perturbed copy of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scoring.engine.rubric_stats import Stat

INJECTION_GOAL = 0.02  # spotlighting-style defences keep the injection flip rate below 2 %


@dataclass(frozen=True)
class Observation:
    kind: str  # "padding", "reformat", "flattery", "reorder", "order_swap", "injection", "causal"
    original: dict[str, bool | None]
    perturbed: dict[str, bool | None]
    original_score: float | None
    perturbed_score: float | None
    target: str = ""  # causal: the criterion the rewrite removed or added
    expected: bool | None = None  # causal: the targeted verdict the rewrite should give


@dataclass(frozen=True)
class Interval:
    value: float | None
    low: float | None
    high: float | None
    n: int
    why: str = ""


def verdict_flips(o: Observation, *, skip: str = "") -> tuple[int, int]:
    """(verdicts that changed, verdicts compared) of one observation."""
    changed = compared = 0
    for key, before in o.original.items():
        after = o.perturbed.get(key)
        if key == skip or before is None or after is None:
            continue
        compared += 1
        changed += before != after
    return changed, compared


def _bootstrap(
    values: np.ndarray, weights: np.ndarray, replicates: int, seed: int
) -> tuple[float, float]:
    """Percentile interval of the weighted mean, resampling responses."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, values.size, size=(replicates, values.size))
    totals = weights[picks].sum(axis=1)
    means = np.where(
        totals > 0, (values[picks] * weights[picks]).sum(axis=1) / np.maximum(totals, 1e-12), np.nan
    )
    low, high = np.nanpercentile(means, [2.5, 97.5])
    return float(low), float(high)


def flip_rate(
    observations: Sequence[Observation], *, replicates: int = 500, seed: int = 0
) -> Interval:
    """The share of criterion verdicts that changed, over every compared verdict, with a
    bootstrap interval over responses."""
    counts = np.asarray([verdict_flips(o) for o in observations], dtype=float).reshape(-1, 2)
    kept = counts[counts[:, 1] > 0]
    if kept.size == 0:
        return Interval(None, None, None, 0, "no verdict to compare")
    rates, weights = kept[:, 0] / kept[:, 1], kept[:, 1]
    value = float(kept[:, 0].sum() / kept[:, 1].sum())
    low, high = _bootstrap(rates, weights, replicates, seed)
    return Interval(value, low, high, int(kept.shape[0]))


def score_change(
    observations: Sequence[Observation], *, replicates: int = 500, seed: int = 0
) -> Interval:
    """The mean change of the score (perturbed − original), with a bootstrap interval."""
    deltas = np.asarray(
        [
            o.perturbed_score - o.original_score
            for o in observations
            if o.original_score is not None and o.perturbed_score is not None
        ]  # fmt: skip
    )
    if deltas.size == 0:
        return Interval(None, None, None, 0, "no response scored before and after")
    low, high = _bootstrap(deltas, np.ones_like(deltas), replicates, seed)
    return Interval(float(deltas.mean()), low, high, int(deltas.size))


def raised(observations: Sequence[Observation]) -> Stat:
    """The share of probes whose score went up (what an injected instruction aims at)."""
    pairs = [(o.original_score, o.perturbed_score) for o in observations]
    scored = [(a, b) for a, b in pairs if a is not None and b is not None]
    if not scored:
        return Stat.undefined("no response scored before and after")
    return Stat(sum(b > a for a, b in scored) / len(scored), len(scored))


def target_hit(o: Observation) -> bool | None:
    """Whether the targeted criterion's verdict on the rewrite is the intended one (``expected``,
    else a change from the original's); None when either verdict is missing."""
    before, after = o.original.get(o.target), o.perturbed.get(o.target)
    if not o.target or before is None or after is None:
        return None
    return after == o.expected if o.expected is not None else after != before


def sensitivity(observations: Sequence[Observation]) -> Stat:
    """Causal probes: the share whose targeted criterion went the way the rewrite intended
    (met after an addition, not met after a removal)."""
    hits = [hit for o in observations if (hit := target_hit(o)) is not None]
    if not hits:
        return Stat.undefined("no causal probe with the targeted criterion judged before and after")
    return Stat(sum(hits) / len(hits), len(hits))


def specificity(observations: Sequence[Observation]) -> Stat:
    """Causal probes: the share of the other criteria's verdicts that stayed put."""
    changed = compared = 0
    for o in observations:
        c, n = verdict_flips(o, skip=o.target)
        changed, compared = changed + c, compared + n
    if compared == 0:
        return Stat.undefined("no other criterion judged before and after")
    return Stat(1 - changed / compared, compared)
