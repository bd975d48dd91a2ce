"""Score aggregation: the published formulas, written to be read against the papers.

HealthBench (Arora et al., 2025): each rubric item has points (negative for a pitfall) and a
grader says whether the response meets it. A response's score is the sum of the points of
the met items, negative items included (a met pitfall subtracts), divided by the sum of the
positive points. Scores are NOT clipped per example; the mean over responses is clipped to
[0, 1], and its standard error comes from bootstrap resampling of responses.

Rubrics as Rewards (RaR, Gunjal et al., 2025): explicit aggregation is the weighted mean of
met criteria, Σ w_j·met_j / Σ_{w_j>0} w_j (pitfalls carry negative weights); implicit
aggregation asks the judge for one holistic 1-10 rating given the whole rubric, normalised
to [0, 1].

Missing judgments: every ``met`` value may be None, meaning the judgment failed (the call
errored, the answer was malformed). A failed judgment is never counted as "not met": any
aggregate that would need it returns None (undefined), and the caller reports it as such or
retries. Counting failures as "not met" would quietly lower the scores of whichever
responses happened to hit errors.

Plain Python (no numpy, no Django); the bootstrap is deterministic for a given seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

__all__ = [
    "bootstrap_se",
    "essential_gate",
    "healthbench_expected",
    "healthbench_score",
    "healthbench_subscores",
    "mean_clipped",
    "rar_explicit",
    "rar_implicit",
]

Met = bool | None


def _weighted_met(weights: Sequence[float], met: Sequence[Met]) -> float | None:
    """Σ w·met / Σ_{w>0} w, or None without positive weights or with a missing judgment.

    Lengths must match (``zip(strict=True)`` raises ValueError otherwise)."""
    pairs = list(zip(weights, met, strict=True))
    if any(m is None for _, m in pairs):
        return None
    positive = sum(w for w, _ in pairs if w > 0)
    if positive <= 0:
        return None
    return sum(w for w, m in pairs if m) / positive


def healthbench_score(points: Sequence[float], met: Sequence[Met]) -> float | None:
    """HealthBench example score: points of the met items (a met pitfall, with negative
    points, subtracts) over the sum of positive points. Not clipped: it can be negative.
    None when no item has positive points, or when any judgment is missing (None).

    >>> healthbench_score([7, 5, 10, -6], [True, False, True, True])  # (7 + 10 - 6) / 22
    0.5
    """
    return _weighted_met(points, met)


def healthbench_expected(
    points: Sequence[float], probabilities: Sequence[float | None]
) -> float | None:
    """The HealthBench score in expectation, from a local judge's P(met) per item:
    Σ points·P / Σ positive points. Continuous where the thresholded score jumps; equal to
    ``healthbench_score`` when every probability is 0 or 1. None as there.

    >>> healthbench_expected([7, 5, 10, -6], [1.0, 0.0, 1.0, 1.0])
    0.5
    >>> round(healthbench_expected([4, -2], [0.5, 0.25]), 3)  # (2 - 0.5) / 4
    0.375
    """
    known = [p for p in probabilities if p is not None]
    if len(known) != len(probabilities):
        return None
    pairs = list(zip(points, known, strict=True))
    positive = sum(w for w, _ in pairs if w > 0)
    if positive <= 0:
        return None
    return sum(w * p for w, p in pairs) / positive


def healthbench_subscores(
    points: Sequence[float],
    met: Sequence[Met],
    tags: Sequence[Sequence[str]],
    prefix: str = "axis:",
) -> dict[str, float | None]:
    """The HealthBench formula restricted to the items carrying each tag that starts with
    ``prefix`` (``"axis:"`` gives axis:accuracy, axis:completeness, ...; ``""`` gives every
    tag). Keys are the full tag names, sorted. A tag's subscore is None when its items have
    no positive points or when one of its items has a missing judgment; a missing judgment
    on an item without the tag does not affect that tag.
    """
    if not len(points) == len(met) == len(tags):
        raise ValueError(
            f"points, met and tags differ in length: {len(points)}, {len(met)}, {len(tags)}"
        )
    names = sorted({t for item_tags in tags for t in item_tags if t.startswith(prefix)})
    subscores: dict[str, float | None] = {}
    for name in names:
        chosen = [i for i, item_tags in enumerate(tags) if name in item_tags]
        subscores[name] = _weighted_met([points[i] for i in chosen], [met[i] for i in chosen])
    return subscores


def mean_clipped(scores: Sequence[float | None]) -> float | None:
    """Mean of the defined scores (None entries are left out), clipped to [0, 1]. HealthBench
    clips the mean over examples, not the examples. None when no score is defined."""
    defined = [s for s in scores if s is not None]
    if not defined:
        return None
    return min(1.0, max(0.0, math.fsum(defined) / len(defined)))


def bootstrap_se(
    scores: Sequence[float | None], *, n_boot: int = 1000, seed: int = 0
) -> float | None:
    """Standard error of ``mean_clipped`` by bootstrap: resample the defined scores with
    replacement ``n_boot`` times, clip each resample's mean to [0, 1], and take the
    standard deviation (population form, as HealthBench's ``np.std``) of those means.
    Deterministic for a given seed. None for fewer than 2 defined scores."""
    defined = [float(s) for s in scores if s is not None]
    n = len(defined)
    if n < 2:
        return None
    if n_boot < 2:
        raise ValueError("n_boot must be at least 2")
    rng = random.Random(seed)  # noqa: S311 - resampling, not cryptography
    means = [min(1.0, max(0.0, math.fsum(rng.choices(defined, k=n)) / n)) for _ in range(n_boot)]
    centre = math.fsum(means) / n_boot
    return math.sqrt(math.fsum((m - centre) ** 2 for m in means) / n_boot)


def rar_explicit(weights: Sequence[float], met: Sequence[Met]) -> float | None:
    """RaR explicit aggregation: Σ w_j·met_j / Σ_{w_j>0} w_j. Pitfalls carry negative weights
    and subtract when met, so the result can fall below 0; it is not clipped. None without
    positive weights or with a missing judgment."""
    return _weighted_met(weights, met)


def rar_implicit(rating: int | None, scale: tuple[int, int] = (1, 10)) -> float | None:
    """RaR implicit aggregation: the judge's holistic rating on ``scale`` (1-10 by default)
    normalised to [0, 1] as (rating - low) / (high - low), i.e. (rating - 1) / 9. None when
    the rating is missing (a failed judgment); ValueError for a rating outside the scale."""
    if rating is None:
        return None
    low, high = scale
    if high <= low:
        raise ValueError(f"invalid scale {scale}")
    if isinstance(rating, bool) or not low <= rating <= high:
        raise ValueError(f"rating {rating!r} is outside the scale {low}-{high}")
    return (rating - low) / (high - low)


def essential_gate(
    score: float | None,
    categories: Sequence[str],
    met: Sequence[Met],
    *,
    cap: float = 0.0,
) -> float | None:
    """If any criterion of category "essential" is not met, the score becomes
    min(score, cap) (by default 0: missing an essential criterion fails the response).
    None when the score is None or any judgment is missing."""
    pairs = list(zip(categories, met, strict=True))
    if score is None or any(m is None for _, m in pairs):
        return None
    if any(category == "essential" and not m for category, m in pairs):
        return min(score, cap)
    return score
