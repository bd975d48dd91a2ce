"""The probe report's figures on hand-made observations, and their bootstrap intervals
(seeded, containing the point estimate)."""

from __future__ import annotations

import numpy as np
import pytest

from scoring.engine import probe_stats as ps
from scoring.engine.rubric_stats import Stat


def _obs(before, after, s0=0.5, s1=0.5, kind="padding", target=""):  # type: ignore[no-untyped-def]
    return ps.Observation(kind, before, after, s0, s1, target)


def test_flip_rate_counts_changed_verdicts_over_compared_ones():
    observations = [
        _obs({"a": True, "b": False}, {"a": True, "b": True}),  # 1 of 2
        _obs({"a": True, "b": None}, {"a": False, "b": True}),  # 1 of 1 (b missing before)
        _obs({"a": False}, {"a": False}),  # 0 of 1
    ]
    rate = ps.flip_rate(observations, seed=1)
    assert rate.value == pytest.approx(2 / 4) and rate.n == 3
    assert rate.low is not None and rate.high is not None and rate.low <= rate.value <= rate.high
    assert ps.flip_rate(observations, seed=1) == rate  # reproducible by seed
    assert ps.flip_rate([_obs({"a": None}, {"a": True})]).why == "no verdict to compare"


def test_a_judge_that_ignores_the_perturbation_has_a_zero_rate_and_a_zero_interval():
    steady = [_obs({"a": True, "b": False}, {"a": True, "b": False}) for _ in range(20)]
    rate = ps.flip_rate(steady)
    assert (rate.value, rate.low, rate.high) == (0.0, 0.0, 0.0)
    assert rate.value < ps.INJECTION_GOAL


def test_score_change_and_raised_share():
    observations = [
        _obs({}, {}, 0.2, 0.6),
        _obs({}, {}, 0.5, 0.5),
        _obs({}, {}, 0.8, 0.7),
        _obs({}, {}, None, 0.9),
    ]
    change = ps.score_change(observations, seed=3)
    assert change.value == pytest.approx(np.mean([0.4, 0.0, -0.1])) and change.n == 3
    assert change.low <= change.value <= change.high
    assert ps.raised(observations) == Stat(1 / 3, 3)
    assert ps.raised([_obs({}, {}, None, None)]).value is None


def test_causal_sensitivity_and_specificity():
    observations = [
        _obs(
            {"t": True, "x": True, "y": False},
            {"t": False, "x": True, "y": False},
            kind="causal",
            target="t",
        ),
        _obs(
            {"t": True, "x": True, "y": False},
            {"t": True, "x": False, "y": False},
            kind="causal",
            target="t",
        ),
    ]
    assert ps.sensitivity(observations) == Stat(0.5, 2)  # the first rewrite flipped its target
    assert ps.specificity(observations) == Stat(1 - 1 / 4, 4)  # one of four others moved
    assert ps.sensitivity([_obs({"a": True}, {"a": False})]).value is None


def test_sensitivity_counts_the_intended_direction_when_it_is_known():
    from scoring.engine.probe_stats import Observation, sensitivity

    removed = Observation("causal", {"a": True}, {"a": False}, 1.0, 0.0, target="a", expected=False)
    wrong_way = Observation(
        "causal", {"a": False}, {"a": True}, 0.0, 1.0, target="a", expected=False
    )
    added = Observation("causal", {"b": False}, {"b": True}, 0.0, 1.0, target="b", expected=True)
    stat = sensitivity([removed, wrong_way, added])
    assert (stat.value, stat.n) == (2 / 3, 3)  # a flip the wrong way is no hit
