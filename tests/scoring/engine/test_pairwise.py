"""pairwise.py: merging the two presentation orders, per criterion too, the pair plans, and
the position-bias summary."""

from __future__ import annotations

import pytest

from scoring.engine.pairwise import (
    PositionBias,
    merge_criteria_orders,
    merge_orders,
    plan_all_pairs,
    plan_sampled,
    plan_vs_baseline,
    position_bias,
)

# --- merging orders ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ("A", "B", ("a", True)),  # a wins shown first and shown second
        ("B", "A", ("b", True)),  # b wins in both positions
        ("A", "A", ("tie", False)),  # the first-shown response won both times
        ("B", "B", ("tie", False)),  # the second-shown response won both times
        ("tie", "tie", ("tie", True)),
        ("A", "tie", ("tie", False)),
        ("tie", "B", ("tie", False)),
        ("B", "tie", ("tie", False)),
        ("tie", "A", ("tie", False)),
    ],
)
def test_merge_orders(first, second, expected):
    assert merge_orders(first, second) == expected


@pytest.mark.parametrize("bad", ["a", "C", "", None, "TIE"])
def test_merge_orders_rejects_unknown_verdicts(bad):
    with pytest.raises(ValueError, match="invalid verdict"):
        merge_orders(bad, "A")
    with pytest.raises(ValueError, match="invalid verdict"):
        merge_orders("A", bad)


def test_merge_criteria_orders():
    first = {3: "A", 1: "B", 2: "A", 4: "tie"}
    second = {1: "A", 2: "A", 3: "B", 4: "tie"}
    merged = merge_criteria_orders(first, second)
    assert list(merged) == [1, 2, 3, 4]
    assert merged == {1: ("b", True), 2: ("tie", False), 3: ("a", True), 4: ("tie", True)}
    assert merge_criteria_orders({}, {}) == {}


def test_merge_criteria_orders_needs_the_same_criteria():
    with pytest.raises(ValueError, match=r"only in the first \[2\], only in the second \[3\]"):
        merge_criteria_orders({1: "A", 2: "A"}, {1: "B", 3: "B"})


# --- plans ------------------------------------------------------------------------------------

RESPONSES = [(4, "gpt"), (1, "claude"), (3, "baseline"), (2, "gpt"), (5, "baseline")]


def test_all_pairs():
    pairs = plan_all_pairs(RESPONSES)
    assert len(pairs) == 10
    assert pairs == sorted(pairs)
    assert all(a < b for a, b in pairs)
    assert len(set(pairs)) == 10
    assert plan_all_pairs(list(reversed(RESPONSES))) == pairs
    assert plan_all_pairs([(1, "x")]) == []
    assert plan_all_pairs([]) == []


def test_all_pairs_with_string_ids():
    assert plan_all_pairs([("r2", "x"), ("r1", "y"), ("r3", "x")]) == [
        ("r1", "r2"),
        ("r1", "r3"),
        ("r2", "r3"),
    ]


def test_duplicate_ids_are_refused():
    with pytest.raises(ValueError, match=r"duplicate response ids \[1\]"):
        plan_all_pairs([(1, "a"), (1, "b")])


def test_vs_baseline():
    pairs = plan_vs_baseline(RESPONSES, "baseline")
    assert pairs == [(1, 3), (1, 5), (2, 3), (2, 5), (4, 3), (4, 5)]
    assert plan_vs_baseline(list(reversed(RESPONSES)), "baseline") == pairs
    assert plan_vs_baseline(RESPONSES, "nobody") == []
    assert plan_vs_baseline([(3, "baseline"), (5, "baseline")], "baseline") == []


def test_sampled():
    many = [(i, "m") for i in range(1, 11)]  # 45 pairs
    pairs = plan_sampled(many, 7, seed=1)
    assert len(pairs) == 7
    assert len(set(pairs)) == 7
    assert pairs == sorted(pairs)
    assert all(a < b for a, b in pairs)
    assert set(pairs) <= set(plan_all_pairs(many))
    # deterministic, whatever the input order
    assert plan_sampled(list(reversed(many)), 7, seed=1) == pairs
    # the seed and the prompt's responses both change the draw
    assert plan_sampled(many, 7, seed=2) != pairs
    others = [(i + 100, "m") for i in range(1, 11)]
    assert [(a - 100, b - 100) for a, b in plan_sampled(others, 7, seed=1)] != pairs


def test_sampled_more_than_possible():
    assert plan_sampled(RESPONSES, 50, seed=0) == plan_all_pairs(RESPONSES)
    assert plan_sampled(RESPONSES, 10, seed=0) == plan_all_pairs(RESPONSES)
    assert plan_sampled([(1, "x")], 3, seed=0) == []
    assert plan_sampled(RESPONSES, 0, seed=0) == []
    with pytest.raises(ValueError):
        plan_sampled(RESPONSES, -1, seed=0)


# --- position bias ----------------------------------------------------------------------------


def test_position_bias():
    summary = position_bias(
        [("A", "B"), ("A", "A"), ("A", "A"), ("B", "B"), ("tie", "A"), ("tie", "tie")]
    )
    assert summary == PositionBias(
        pairs=6,
        inconsistent=4,
        inconsistent_share=4 / 6,
        first_shown_wins=5,
        second_shown_wins=2,
        first_shown_share=5 / 7,
    )


def test_position_bias_empty_and_consistent():
    assert position_bias([]) == PositionBias(0, 0, None, 0, 0, None)
    assert position_bias([("A", "B"), ("B", "A")]) == PositionBias(2, 0, 0.0, 0, 0, None)
