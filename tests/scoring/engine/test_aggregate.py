"""aggregate.py: the HealthBench and RaR formulas on worked examples, the clipped mean and its
bootstrap standard error, the essential gate, and missing judgments that stay undefined."""

from __future__ import annotations

import hashlib
import json
import math
import random
from pathlib import Path

import pytest

from scoring.engine.aggregate import (
    bootstrap_se,
    essential_gate,
    healthbench_score,
    healthbench_subscores,
    mean_clipped,
    rar_explicit,
    rar_implicit,
)

HEALTHBENCH = (
    Path(__file__).resolve().parents[3].parent
    / "shared"
    / "data"
    / "healthbench"
    / "healthbench_sample_250.jsonl"
)


# --- HealthBench ----------------------------------------------------------------------------


def test_worked_example():
    # (7 + 10 - 6) / (7 + 5 + 10) = 11 / 22
    assert healthbench_score([7, 5, 10, -6], [True, False, True, True]) == 0.5


def test_met_pitfall_subtracts_and_score_is_not_clipped():
    assert healthbench_score([5, 5, -6], [True, True, False]) == 1.0
    assert healthbench_score([5, 5, -6], [True, True, True]) == pytest.approx(0.4)
    assert healthbench_score([5, 5, -6], [False, False, True]) == pytest.approx(-0.6)
    assert healthbench_score([4, -10], [True, True]) == pytest.approx(-1.5)


def test_no_positive_points_is_undefined():
    assert healthbench_score([], []) is None
    assert healthbench_score([-3, -2], [True, False]) is None
    assert healthbench_score([0, -2], [True, True]) is None


def test_missing_judgment_is_undefined_not_unmet():
    assert healthbench_score([7, 5, 10, -6], [True, None, True, True]) is None
    assert healthbench_score([7, -6], [True, None]) is None  # not 1.0 as "unmet" would give
    assert rar_explicit([5, 3], [None, True]) is None


def test_lengths_must_match():
    with pytest.raises(ValueError):
        healthbench_score([1, 2], [True])


def test_subscores_by_axis():
    points = [5, 3, -4, 2, 6]
    met = [True, False, True, True, False]
    tags = [
        ["axis:accuracy", "level:example"],
        ["axis:accuracy"],
        ["axis:accuracy", "level:cluster"],
        ["axis:completeness", "level:example"],
        ["axis:completeness"],
    ]
    subscores = healthbench_subscores(points, met, tags)
    assert list(subscores) == ["axis:accuracy", "axis:completeness"]
    assert subscores["axis:accuracy"] == pytest.approx((5 - 4) / 8)
    assert subscores["axis:completeness"] == pytest.approx(2 / 8)

    every = healthbench_subscores(points, met, tags, prefix="")
    assert list(every) == [
        "axis:accuracy",
        "axis:completeness",
        "level:cluster",
        "level:example",
    ]
    assert every["level:example"] == pytest.approx((5 + 2) / 7)
    assert every["level:cluster"] is None  # only a negative item: no positive points


def test_subscores_missing_judgment_only_affects_its_tags():
    subscores = healthbench_subscores(
        [5, 3], [True, None], [["axis:accuracy"], ["axis:completeness"]]
    )
    assert subscores == {"axis:accuracy": 1.0, "axis:completeness": None}


def test_subscores_lengths_must_match():
    with pytest.raises(ValueError, match="length"):
        healthbench_subscores([1, 2], [True, False], [["axis:a"]])


def _independent_score(rubrics: list[dict], met: list[bool]) -> float | None:
    total_possible = 0.0
    achieved = 0.0
    for item, is_met in zip(rubrics, met, strict=True):
        if item["points"] > 0:
            total_possible += item["points"]
        if is_met:
            achieved += item["points"]
    return None if total_possible == 0 else achieved / total_possible


@pytest.mark.skipif(not HEALTHBENCH.exists(), reason="HealthBench sample not available")
def test_real_healthbench_sample_matches_independent_computation():
    records = [json.loads(line) for line in HEALTHBENCH.read_text().splitlines() if line.strip()]
    assert records
    scores = []
    for record in records:
        rubrics = record["rubrics"]
        met = [
            int.from_bytes(hashlib.sha256(item["criterion"].encode()).digest()[:4], "big") % 2 == 1
            for item in rubrics
        ]
        expected = _independent_score(rubrics, met)
        got = healthbench_score([item["points"] for item in rubrics], met)
        if expected is None:
            assert got is None
        else:
            assert got == pytest.approx(expected, abs=1e-12)
            scores.append(got)
        subscores = healthbench_subscores(
            [item["points"] for item in rubrics], met, [item["tags"] for item in rubrics]
        )
        for tag, value in subscores.items():
            chosen = [i for i, item in enumerate(rubrics) if tag in item["tags"]]
            assert value == _independent_score(
                [rubrics[i] for i in chosen], [met[i] for i in chosen]
            )
    assert len(scores) > 100
    assert 0.0 <= mean_clipped(scores) <= 1.0  # type: ignore[operator]


# --- mean and standard error --------------------------------------------------------------


def test_mean_is_clipped_not_the_examples():
    assert mean_clipped([1.2, 0.9]) == 1.0  # mean 1.05
    assert mean_clipped([-0.5, 0.2]) == 0.0  # mean -0.15
    assert mean_clipped([-0.4, 1.0]) == pytest.approx(0.3)  # clipping examples would give 0.5
    assert mean_clipped([0.25, 0.75]) == pytest.approx(0.5)


def test_mean_skips_undefined_scores():
    assert mean_clipped([None, 0.4, None, 0.6]) == pytest.approx(0.5)
    assert mean_clipped([None, None]) is None
    assert mean_clipped([]) is None


def test_bootstrap_se_is_deterministic_and_close_to_analytic():
    rng = random.Random(42)
    scores = [rng.uniform(0.0, 1.0) for _ in range(200)]
    first = bootstrap_se(scores, seed=7)
    assert first == bootstrap_se(scores, seed=7)
    assert first != bootstrap_se(scores, seed=8)
    mean = sum(scores) / len(scores)
    analytic = math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores)) / math.sqrt(200)
    assert first == pytest.approx(analytic, rel=0.15)


def test_bootstrap_se_small_inputs():
    assert bootstrap_se([]) is None
    assert bootstrap_se([0.5]) is None
    assert bootstrap_se([0.5, None]) is None
    assert bootstrap_se([0.5, 0.5, 0.5]) == 0.0
    assert bootstrap_se([0.0, 1.0], n_boot=200) > 0  # type: ignore[operator]


def test_bootstrap_se_uses_the_clipped_mean():
    # every resampled mean is above 1 and clips to exactly 1: no spread left
    assert bootstrap_se([1.5, 2.0, 1.2, 3.0]) == 0.0


# --- RaR ----------------------------------------------------------------------------------


def test_rar_explicit():
    weights = [5, 3, 1, -2]
    assert rar_explicit(weights, [True, True, True, False]) == 1.0
    assert rar_explicit(weights, [True, False, True, False]) == pytest.approx(6 / 9)
    assert rar_explicit(weights, [True, False, False, True]) == pytest.approx(3 / 9)
    assert rar_explicit(weights, [False, False, False, True]) == pytest.approx(-2 / 9)
    assert rar_explicit([-1], [True]) is None


def test_rar_implicit():
    assert rar_implicit(1) == 0.0
    assert rar_implicit(10) == 1.0
    assert rar_implicit(7) == pytest.approx(6 / 9)
    assert rar_implicit(3, scale=(1, 5)) == 0.5
    assert rar_implicit(None) is None
    for bad in (0, 11, True):
        with pytest.raises(ValueError):
            rar_implicit(bad)


# --- essential gate -----------------------------------------------------------------------


def test_essential_gate():
    categories = ["essential", "important", "pitfall"]
    assert essential_gate(0.8, categories, [True, False, False]) == 0.8
    assert essential_gate(0.8, categories, [False, True, False]) == 0.0
    assert essential_gate(0.8, categories, [False, True, False], cap=0.5) == 0.5
    assert essential_gate(0.3, categories, [False, True, False], cap=0.5) == 0.3
    assert essential_gate(-0.2, categories, [False, True, True]) == -0.2
    assert essential_gate(0.8, ["important", "optional"], [False, False]) == 0.8


def test_essential_gate_undefined():
    assert essential_gate(None, ["essential"], [True]) is None
    assert essential_gate(0.8, ["essential", "optional"], [True, None]) is None
    with pytest.raises(ValueError):
        essential_gate(0.8, ["essential"], [True, False])
