"""Is a rubric any good as a reward? The statistics of the Analytics tab, in plain Python and
numpy (no Django): how often each criterion is met and whether it separates responses, how
noisy the judge is, which criteria say the same thing, the rubric's signal-to-noise ratio,
its accuracy among the best responses, a Bradley–Terry leaderboard of response sources with
bootstrap intervals, and the judge's position and length biases.

Verdicts come as a matrix of responses × criteria holding 1.0 (met), 0.0 (not met) or NaN
(no verdict: failed, or the criterion was not judged for that response). A figure that the
data cannot define is a ``Stat`` with ``value=None`` and the reason, never a silent gap.

References: point-biserial correlation (a Pearson r with a binary variable); the OpenRubrics
consistency filter (a criterion should favour the preferred response of a labelled pair);
Heineman et al. (2025), "Signal and Noise" (SNR = relative spread of sources / relative
spread of repeated measurements); "Chasing the Tail" (accuracy among the top-scored
responses); Bradley & Terry (1952), fitted by Newton's method on the penalised likelihood
as ``choix.opt_pairwise`` defines it; Kendall's τ-b.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

SATURATED_HIGH = 0.95  # met by more than this share of responses: it cannot discriminate
SATURATED_LOW = 0.05
REDUNDANT_AGREEMENT = 0.95
BT_ALPHA = 0.01  # a weak Gaussian prior on log-strengths: an undefeated source stays finite


@dataclass(frozen=True)
class Stat:
    """A figure, or None and why it is undefined."""

    value: float | None
    n: int = 0  # what it was computed over (responses, pairs, comparisons)
    why: str = ""

    @staticmethod
    def undefined(why: str, n: int = 0) -> Stat:
        return Stat(None, n, why)


def _defined(values: np.ndarray) -> np.ndarray:
    defined: np.ndarray = ~np.isnan(values)
    return defined


# --- per criterion -----------------------------------------------------------------------


def hit_rate(verdicts: np.ndarray) -> Stat:
    """The share of responses that meet the criterion, over those with a verdict."""
    known = verdicts[_defined(verdicts)]
    if known.size == 0:
        return Stat.undefined("no verdict for this criterion")
    return Stat(float(known.mean()), int(known.size))


def saturated(rate: Stat) -> bool:
    """Met by more than 95 % or fewer than 5 % of the responses: it cannot discriminate."""
    return rate.value is not None and not SATURATED_LOW <= rate.value <= SATURATED_HIGH


def pearson(x: np.ndarray, y: np.ndarray) -> Stat:
    """Pearson's r over the positions where both are defined (``scipy.stats.pearsonr``);
    with a 0/1 ``x`` it is the point-biserial correlation."""
    both = _defined(x) & _defined(y)
    x, y = x[both], y[both]
    n = int(x.size)
    if n < 3:
        return Stat.undefined(f"too few responses with both values ({n}; 3 needed)", n)
    dx, dy = x - x.mean(), y - y.mean()
    sx, sy = float(np.sqrt((dx * dx).sum())), float(np.sqrt((dy * dy).sum()))
    if sx == 0:
        return Stat.undefined("one class only: every response has the same verdict", n)
    if sy == 0:
        return Stat.undefined("every response has the same score", n)
    return Stat(float(np.clip((dx * dy).sum() / (sx * sy), -1.0, 1.0)), n)


def rest_scores(points: np.ndarray, verdicts: np.ndarray) -> np.ndarray:
    """One response's score on the rest of its rubric, for each criterion: the HealthBench
    score (points of the met items over the positive points) of the other criteria. NaN
    where another criterion's verdict is missing, or no other criterion has positive points.
    A criterion's point-biserial correlation with these scores is its discrimination."""
    positive = np.where(points > 0, points, 0.0)
    rest_positive = positive.sum() - positive
    known = _defined(verdicts)
    met = np.where(known, np.nan_to_num(verdicts) * points, 0.0)
    missing = ~known
    others_missing = missing.sum() - missing
    scores: np.ndarray = (met.sum() - met) / np.where(rest_positive > 0, rest_positive, 1.0)
    scores[(others_missing > 0) | (rest_positive <= 0)] = np.nan
    return scores


def label_agreement(verdicts: np.ndarray, points: float, pairs: Sequence[tuple[int, int]]) -> Stat:
    """Over the labelled pairs (chosen row, rejected row) where the criterion's verdicts
    differ, the share where the response it favours is the chosen one: met for a positive
    criterion, not met for a pitfall (the OpenRubrics consistency filter). ``n`` counts those
    informative pairs."""
    favoured_chosen = informative = 0
    for chosen, rejected in pairs:
        a, b = verdicts[chosen], verdicts[rejected]
        if math.isnan(a) or math.isnan(b) or a == b:
            continue
        informative += 1
        chosen_met = a > b
        favoured_chosen += int(chosen_met == (points > 0))
    if informative == 0:
        why = "no labelled pairs" if not pairs else "its verdicts never differ on a labelled pair"
        return Stat.undefined(why, 0)
    return Stat(favoured_chosen / informative, informative)


def cohen_kappa_binary(x: np.ndarray, y: np.ndarray) -> Stat:
    """Cohen's κ of two 0/1 verdict vectors over the positions both have
    (``sklearn.metrics.cohen_kappa_score``)."""
    both = _defined(x) & _defined(y)
    x, y = x[both], y[both]
    n = int(x.size)
    if n == 0:
        return Stat.undefined("no response judged twice", 0)
    p_o = float((x == y).mean())
    p1, q1 = float(x.mean()), float(y.mean())
    p_e = p1 * q1 + (1 - p1) * (1 - q1)
    if p_e >= 1.0:
        return Stat.undefined("one class only: both gave every response the same verdict", n)
    return Stat((p_o - p_e) / (1 - p_e), n)


@dataclass(frozen=True)
class Noise:
    flips: Stat  # share of responses whose verdict differs between the two readings
    kappa: Stat


def judge_noise(first: np.ndarray, second: np.ndarray) -> Noise:
    """Two readings of the same responses (two samples, or two judges)."""
    both = _defined(first) & _defined(second)
    n = int(both.sum())
    if n == 0:
        none = Stat.undefined("no response judged twice")
        return Noise(none, none)
    flips = Stat(float((first[both] != second[both]).mean()), n)
    return Noise(flips, cohen_kappa_binary(first, second))


# --- per rubric / per project ------------------------------------------------------------


@dataclass(frozen=True)
class SignalNoise:
    signal: Stat  # (max − min of per-source means) / mean of them
    noise: Stat  # mean over sources of std / mean of their repeated measurements
    snr: Stat
    means: dict[str, float]
    noise_from: str  # "samples" or "bootstrap"


def signal_to_noise(measurements: Mapping[str, Sequence[float]], noise_from: str) -> SignalNoise:
    """Heineman et al. (2025). ``measurements``: per source, repeated measurements of its
    mean score (one per sample, or per bootstrap replicate over prompts)."""
    means = {s: float(np.mean(m)) for s, m in measurements.items() if len(m)}
    if len(means) < 2:
        none = Stat.undefined("fewer than two sources scored", len(means))
        return SignalNoise(none, none, none, means, noise_from)
    centre = float(np.mean(list(means.values())))
    if centre <= 0:
        none = Stat.undefined("the sources' mean score is not positive", len(means))
        return SignalNoise(none, none, none, means, noise_from)
    signal = Stat((max(means.values()) - min(means.values())) / centre, len(means))
    relative = [
        float(np.std(m, ddof=1)) / means[s]
        for s, m in measurements.items()
        if len(m) >= 2 and means.get(s, 0) > 0
    ]
    if not relative:
        noise = Stat.undefined("no source has two or more measurements", 0)
        return SignalNoise(signal, noise, noise, means, noise_from)
    noise = Stat(float(np.mean(relative)), len(relative))
    if noise.value == 0:
        return SignalNoise(signal, noise, Stat.undefined("no noise: every measurement equal"), means, noise_from)  # fmt: skip
    assert noise.value is not None and signal.value is not None
    return SignalNoise(signal, noise, Stat(signal.value / noise.value, len(means)), means, noise_from)  # fmt: skip


def bootstrap_source_means(
    scores: Mapping[str, Sequence[float]], replicates: int = 200, seed: int = 0
) -> dict[str, list[float]]:
    """Per source, the mean score of ``replicates`` seeded resamples of its responses: the
    repeated measurements of ``signal_to_noise`` when the run has one sample."""
    rng = np.random.default_rng(seed)
    out = {}
    for source in sorted(scores):
        values = np.asarray(scores[source], dtype=float)
        if values.size == 0:
            continue
        draws = rng.integers(0, values.size, size=(replicates, values.size))
        out[source] = [float(x) for x in values[draws].mean(axis=1)]
    return out


def tail_accuracy(
    pairs: Sequence[tuple[float, float]], all_scores: Sequence[float], q: float
) -> Stat:
    """Among labelled pairs (chosen score, rejected score) whose responses are both in the
    top ``q`` of ``all_scores``, the share where the rubric scores the chosen one higher
    (a tie counts one half). ``q`` = 1 gives the figure over all pairs."""
    scores = np.asarray([s for s in all_scores if not math.isnan(s)], dtype=float)
    if scores.size == 0:
        return Stat.undefined("no response scored")
    cut = float(np.quantile(scores, 1 - q)) if q < 1 else -math.inf
    kept = [
        (c, r) for c, r in pairs if not (math.isnan(c) or math.isnan(r)) and c >= cut and r >= cut
    ]
    if not kept:
        why = (
            "no labelled pairs"
            if not pairs
            else f"no labelled pair has both responses in the top {q:.0%}"
        )
        return Stat.undefined(why)
    wins = sum(1.0 if c > r else 0.5 if c == r else 0.0 for c, r in kept)
    return Stat(wins / len(kept), len(kept))


# --- leaderboard --------------------------------------------------------------------------


def _win_matrix(n: int, a: np.ndarray, b: np.ndarray, outcome: np.ndarray) -> np.ndarray:
    """wins[i, j]: how often i beat j, a tie counting one half to each."""
    wins = np.zeros((n, n))
    np.add.at(wins, (a, b), outcome)  # outcome: 1 a won, 0 b won, 0.5 tie
    np.add.at(wins, (b, a), 1 - outcome)
    return wins


def _columns(
    comparisons: Sequence[tuple[int, int, float]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    data = np.asarray(comparisons, dtype=float).reshape(-1, 3)
    return data[:, 0].astype(int), data[:, 1].astype(int), data[:, 2]


def _fit(wins: np.ndarray, alpha: float) -> np.ndarray:
    n = wins.shape[0]
    theta = np.zeros(n)
    games = wins + wins.T
    for _ in range(100):
        diff = theta[:, None] - theta[None, :]
        p = 1 / (1 + np.exp(-diff))  # P(i beats j)
        gradient = (wins - games * p).sum(axis=1) - 2 * alpha * theta
        weight = games * p * (1 - p)
        hessian = weight - np.diag(weight.sum(axis=1)) - 2 * alpha * np.eye(n)
        step = np.linalg.solve(hessian, gradient)
        theta = theta - step
        if np.abs(step).max() < 1e-12:
            break
    return theta


def bradley_terry(
    n: int, comparisons: Sequence[tuple[int, int, float]], alpha: float = BT_ALPHA
) -> np.ndarray:
    """Log-strengths θ maximising Σ wins_ij · log σ(θ_i − θ_j) − α‖θ‖² (Newton's method).
    Ties are half-wins. Equals ``choix.opt_pairwise(n, data, alpha=2α)`` on the data with
    every win written twice and every tie once each way."""
    return _fit(_win_matrix(n, *_columns(comparisons)), alpha)


@dataclass(frozen=True)
class Strength:
    source: str
    theta: float
    low: float
    high: float
    comparisons: int


def leaderboard(
    sources: Sequence[str],
    comparisons: Sequence[tuple[int, int, float]],
    *,
    replicates: int = 200,
    seed: int = 0,
    alpha: float = BT_ALPHA,
) -> list[Strength]:
    """Bradley–Terry strengths of ``sources`` with seeded bootstrap 95 % intervals (the
    comparisons resampled with replacement), strongest first. A source in no comparison is
    left out."""
    n = len(sources)
    if not comparisons:
        return []
    a, b, outcome = _columns(comparisons)
    theta = _fit(_win_matrix(n, a, b, outcome), alpha)
    rng = np.random.default_rng(seed)
    draws = np.empty((replicates, n))
    for k in range(replicates):
        picks = rng.integers(0, a.size, size=a.size)
        draws[k] = _fit(_win_matrix(n, a[picks], b[picks], outcome[picks]), alpha)
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    counts = np.bincount(a, minlength=n) + np.bincount(b, minlength=n)
    board = [
        Strength(sources[i], float(theta[i]), float(low[i]), float(high[i]), int(counts[i]))
        for i in range(n)
        if counts[i]
    ]
    return sorted(board, key=lambda s: (-s.theta, s.source))


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> Stat:
    """Kendall's τ-b of two rankings (``scipy.stats.kendalltau``)."""
    n = len(x)
    if n < 2:
        return Stat.undefined(f"too few sources in both rankings ({n}; 2 needed)", n)
    concordant = discordant = ties_x = ties_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif dx == dy:
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    if denominator == 0:
        return Stat.undefined("one ranking puts every source level", n)
    return Stat((concordant - discordant) / denominator, n)


# --- judge bias ---------------------------------------------------------------------------


def length_bias(lengths: Sequence[float], scores: Sequence[float]) -> Stat:
    """Pearson's r between response length and score (positive: longer scores higher)."""
    return pearson(np.asarray(lengths, dtype=float), np.asarray(scores, dtype=float))


def longer_wins(pairs: Sequence[tuple[int, int, str]]) -> Stat:
    """Over pairs (length of a, length of b, winner "a" | "b" | "tie") of unequal lengths,
    how often the longer response won (a tie counts one half)."""
    wins = n = 0.0
    for la, lb, winner in pairs:
        if la == lb:
            continue
        n += 1
        longer = "a" if la > lb else "b"
        wins += 1.0 if winner == longer else 0.5 if winner == "tie" else 0.0
    if n == 0:
        return Stat.undefined("no pair of responses of different lengths")
    return Stat(wins / n, int(n))


def phi_from_counts(n11: int, n10: int, n01: int, n00: int) -> Stat:
    """φ of two 0/1 variables from their 2×2 counts (both met, only the first, only the
    second, neither): equal to Pearson's r on the vectors."""
    n = n11 + n10 + n01 + n00
    margins = (n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00)
    if margins == 0:
        return Stat.undefined("one class only: a criterion has the same verdict throughout", n)
    return Stat((n11 * n00 - n10 * n01) / math.sqrt(margins), n)
