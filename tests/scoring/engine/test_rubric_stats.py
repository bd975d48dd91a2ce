"""The rubric analytics' statistics against independent oracles, on seeded random data with
ties, missing verdicts and sources with no pairs: choix for Bradley–Terry, scipy for the
point-biserial correlation and Kendall's τ, scikit-learn for Cohen's κ, and the
signal-to-noise ratio on a worked example."""

from __future__ import annotations

import math

import choix
import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import cohen_kappa_score

from scoring.engine import rubric_stats as rs


def _verdicts(rng: np.random.Generator, n: int, m: int, missing: float = 0.1) -> np.ndarray:
    v = (rng.random((n, m)) < rng.uniform(0.2, 0.8, size=m)).astype(float)
    v[rng.random((n, m)) < missing] = np.nan
    return v


def _rest_by_hand(points, row, c):  # type: ignore[no-untyped-def]
    """The HealthBench score of the other criteria, written out."""
    others = [k for k in range(len(points)) if k != c]
    if any(np.isnan(row[k]) for k in others):
        return np.nan
    positive = sum(points[k] for k in others if points[k] > 0)
    return sum(points[k] * row[k] for k in others) / positive if positive > 0 else np.nan


@pytest.mark.parametrize("seed", range(5))
def test_discrimination_is_scipys_point_biserial_on_the_rest_score(seed):
    rng = np.random.default_rng(seed)
    verdicts = _verdicts(rng, 60, 6)
    points = np.array([5.0, 3.0, -4.0, 2.0, 8.0, -2.0])
    rests = np.stack([rs.rest_scores(points, row) for row in verdicts])
    for c in range(6):
        by_hand = np.array([_rest_by_hand(points, row, c) for row in verdicts])
        np.testing.assert_allclose(rests[:, c], by_hand, rtol=1e-12, equal_nan=True)
        got = rs.pearson(verdicts[:, c], rests[:, c])
        both = ~np.isnan(verdicts[:, c]) & ~np.isnan(rests[:, c])
        want = stats.pointbiserialr(verdicts[both, c], rests[both, c]).statistic
        assert got.n == int(both.sum())
        assert got.value == pytest.approx(want, abs=1e-12)


def test_rest_score_is_healthbench_without_the_criterion():
    points = np.array([7.0, 5.0, 10.0, -6.0])
    rests = rs.rest_scores(points, np.array([1.0, 0.0, 1.0, 1.0]))
    assert rests[2] == pytest.approx(1 / 12)  # without the 10-point item: (7 − 6) / 12
    assert rests[0] == pytest.approx((10 - 6) / 15)
    missing = rs.rest_scores(points, np.array([1.0, np.nan, 1.0, 1.0]))
    assert np.isnan(missing[0]) and missing[1] == pytest.approx((7 + 10 - 6) / 17)
    assert np.isnan(rs.rest_scores(np.array([3.0, -2.0]), np.array([1.0, 0.0]))[0])


def test_undefined_figures_say_why():
    assert "one class only" in rs.pearson(np.ones(10), np.arange(10.0)).why
    assert rs.hit_rate(np.full(4, np.nan)).why == "no verdict for this criterion"
    assert "too few" in rs.pearson(np.array([1.0, 0.0]), np.array([0.1, 0.2])).why
    assert rs.label_agreement(np.array([1.0, 1.0]), 3.0, [(0, 1)]).why.startswith("its verdicts")
    assert rs.label_agreement(np.array([1.0]), 3.0, []).why == "no labelled pairs"
    assert "one class only" in rs.cohen_kappa_binary(np.ones(5), np.ones(5)).why
    assert rs.kendall_tau_b([1.0], [2.0]).value is None


@pytest.mark.parametrize("seed", range(5))
def test_kappa_and_flips_are_sklearns(seed):
    rng = np.random.default_rng(seed)
    a = _verdicts(rng, 80, 1)[:, 0]
    b = np.where(rng.random(80) < 0.8, a, 1 - a)
    b[rng.random(80) < 0.1] = np.nan
    both = ~np.isnan(a) & ~np.isnan(b)
    noise = rs.judge_noise(a, b)
    assert noise.kappa.value == pytest.approx(cohen_kappa_score(a[both], b[both]), abs=1e-12)
    assert noise.flips.value == pytest.approx(float((a[both] != b[both]).mean()))
    assert noise.flips.n == int(both.sum())


def test_hit_rate_and_saturation():
    rate = rs.hit_rate(np.array([1.0, 1.0, np.nan, 1.0] * 10))
    assert (rate.value, rate.n) == (1.0, 30) and rs.saturated(rate)
    assert not rs.saturated(rs.hit_rate(np.array([1.0, 0.0])))


def test_label_agreement_favours_the_chosen_for_a_positive_criterion_and_not_for_a_pitfall():
    verdicts = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, np.nan, 0.0])
    pairs = [(0, 1), (2, 3), (4, 5), (6, 7)]  # informative: the first two only
    assert rs.label_agreement(verdicts, 5.0, pairs) == rs.Stat(0.5, 2)
    assert rs.label_agreement(verdicts, -5.0, pairs) == rs.Stat(0.5, 2)
    assert rs.label_agreement(np.array([0.0, 1.0]), -5.0, [(0, 1)]) == rs.Stat(1.0, 1)


def test_signal_to_noise_on_a_worked_example():
    # Means 0.6 and 0.4: signal = (0.6 − 0.4) / 0.5 = 0.4. Noise: std (ddof 1) / mean per
    # source: 0.1/0.6 and 0.1/0.4, mean 0.208333…; SNR = 0.4 / 0.2083… = 1.92.
    figures = rs.signal_to_noise({"a": [0.5, 0.6, 0.7], "b": [0.3, 0.4, 0.5]}, "samples")
    assert figures.signal.value == pytest.approx(0.4)
    assert figures.noise.value == pytest.approx((0.1 / 0.6 + 0.1 / 0.4) / 2)
    assert figures.snr.value == pytest.approx(0.4 / ((0.1 / 0.6 + 0.1 / 0.4) / 2))
    assert rs.signal_to_noise({"a": [0.5]}, "samples").snr.why == "fewer than two sources scored"


def test_bootstrap_means_are_reproducible_by_seed():
    scores = {"a": [0.1, 0.5, 0.9, 0.3], "b": [0.2, 0.2]}
    assert rs.bootstrap_source_means(scores, 50, seed=3) == rs.bootstrap_source_means(
        scores, 50, seed=3
    )
    assert rs.bootstrap_source_means(scores, 50, seed=3) != rs.bootstrap_source_means(
        scores, 50, seed=4
    )


def test_tail_accuracy_counts_pairs_in_the_top_and_ties_as_half():
    scores = [i / 10 for i in range(11)]  # 0.0 … 1.0
    pairs = [(1.0, 0.9), (0.8, 0.95), (0.2, 0.1), (0.9, 0.9)]
    assert rs.tail_accuracy(pairs, scores, 1.0) == rs.Stat((1 + 0 + 1 + 0.5) / 4, 4)
    top = rs.tail_accuracy(pairs, scores, 0.25)  # cut at the 75th percentile: 0.75
    assert top == rs.Stat((1 + 0 + 0.5) / 3, 3)
    assert "top 10%" in rs.tail_accuracy([(0.2, 0.1)], scores, 0.10).why


def _choix_data(comparisons):  # type: ignore[no-untyped-def]
    """Half-wins as choix reads them: each win twice, each tie once each way."""
    data = []
    for a, b, outcome in comparisons:
        if outcome == 0.5:
            data += [(a, b), (b, a)]
        else:
            winner, loser = (a, b) if outcome == 1 else (b, a)
            data += [(winner, loser)] * 2
    return data


@pytest.mark.parametrize("seed", range(6))
def test_bradley_terry_equals_choix(seed):
    rng = np.random.default_rng(seed)
    n = 5
    truth = rng.normal(size=n)
    comparisons = []
    for _ in range(120):
        a, b = rng.choice(n - 1, size=2, replace=False)  # the last source has no pairs
        p = 1 / (1 + math.exp(-(truth[a] - truth[b])))
        r = rng.random()
        outcome = 0.5 if r < 0.1 else (1.0 if r < 0.1 + 0.9 * p else 0.0)
        comparisons.append((int(a), int(b), outcome))
    got = rs.bradley_terry(n, comparisons, alpha=0.01)
    want = choix.opt_pairwise(n, _choix_data(comparisons), alpha=0.02, tol=1e-12)
    assert np.max(np.abs(got - want)) <= 1e-6
    board = rs.leaderboard([f"s{i}" for i in range(n)], comparisons, replicates=50, seed=seed)
    assert {s.source for s in board} == {"s0", "s1", "s2", "s3"}  # s4: no comparison
    for s in board:
        assert s.low <= s.theta <= s.high
    again = rs.leaderboard([f"s{i}" for i in range(n)], comparisons, replicates=50, seed=seed)
    assert board == again  # reproducible by seed


def test_an_undefeated_source_stays_finite():
    theta = rs.bradley_terry(2, [(0, 1, 1.0)] * 10)
    assert np.isfinite(theta).all() and theta[0] > theta[1]


@pytest.mark.parametrize("seed", range(5))
def test_kendall_tau_b_is_scipys_with_ties(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, size=9).astype(float)
    y = x + rng.integers(-1, 2, size=9)
    assert rs.kendall_tau_b(list(x), list(y)).value == pytest.approx(
        stats.kendalltau(x, y).statistic, abs=1e-12
    )


def test_length_bias_and_longer_wins():
    lengths, scores = [10, 20, 30, 40], [0.1, 0.3, 0.2, 0.9]
    assert rs.length_bias(lengths, scores).value == pytest.approx(
        stats.pearsonr(lengths, scores).statistic
    )
    pairs = [(100, 50, "a"), (10, 20, "a"), (30, 30, "b"), (5, 8, "tie")]
    assert rs.longer_wins(pairs) == rs.Stat((1 + 0 + 0.5) / 3, 3)


@pytest.mark.parametrize("seed", range(4))
def test_phi_from_counts_is_pearson(seed):
    rng = np.random.default_rng(seed)
    x = (rng.random(50) < 0.4).astype(float)
    y = np.where(rng.random(50) < 0.7, x, 1 - x)
    counts = [int(((x == a) & (y == b)).sum()) for a, b in ((1, 1), (1, 0), (0, 1), (0, 0))]
    assert rs.phi_from_counts(*counts).value == pytest.approx(
        stats.pearsonr(x, y).statistic, abs=1e-12
    )
    assert rs.phi_from_counts(5, 0, 3, 0).value is None
