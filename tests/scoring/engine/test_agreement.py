"""agreement.py against scikit-learn's cohen_kappa_score and confusion_matrix and the
krippendorff package on seeded random labels (ties as a category, missing ratings, unbalanced
categories, 2-6 raters), hand-computed examples, the undefined edge cases, and bad input."""

from __future__ import annotations

import math
import random
import warnings

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from scoring.engine.agreement import (
    agreement_summary,
    cohen_kappa,
    confusion_matrix,
    consensus,
    krippendorff_alpha_nominal,
    pairwise_kappas,
    percent_agreement,
    pooled_percent_agreement,
    reliability_units,
)

LABELS = ("a", "b", "tie")
TOL = 1e-9


def random_ratings(rng: random.Random, n: int, missing: float, labels=LABELS) -> list:
    """n ratings drawn with random (often very unbalanced) label weights, None with
    probability ``missing``."""
    weights = [rng.random() ** 3 for _ in labels]
    return [None if rng.random() < missing else rng.choices(labels, weights)[0] for _ in range(n)]


def sklearn_kappa(x, y) -> float:
    pairs = [(a, b) for a, b in zip(x, y, strict=True) if a is not None and b is not None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cohen_kappa_score([a for a, _ in pairs], [b for _, b in pairs])


def package_alpha(units) -> float:
    """krippendorff.alpha on units (items × raters), coded as integers with np.nan for missing:
    the package turns np.nan into the string "nan" in a string array, so codes are safer."""
    code = {label: k for k, label in enumerate(sorted({r for u in units for r in u if r}))}
    width = max(len(unit) for unit in units)  # units may be ragged: pad with missing
    matrix = [[np.nan if r is None else code[r] for r in unit] for unit in units]
    matrix = [row + [np.nan] * (width - len(row)) for row in matrix]
    data = np.array(matrix, dtype=float).T  # raters × units
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")


# --- percent agreement -----------------------------------------------------------------------


def test_percent_agreement_hand_example():
    x = ["a", "b", "tie", "a", None, "b"]
    y = ["a", "a", "tie", None, "b", "b"]
    # both present on items 0, 1, 2, 5; agree on 0, 2, 5
    assert percent_agreement(x, y) == 3 / 4


def test_percent_agreement_is_none_without_common_items():
    assert percent_agreement([], []) is None
    assert percent_agreement(["a", None], [None, "b"]) is None


# --- Cohen's kappa ---------------------------------------------------------------------------


def test_cohen_kappa_hand_example():
    x = ["a", "a", "a", "b", "b", "tie", "tie", "a", None]
    y = ["a", "a", "b", "b", "tie", "tie", "a", "a", "b"]
    # 8 pairs, 5 agree: p_o = 5/8. x uses a 4, b 2, tie 2; y uses a 4, b 2, tie 2.
    # p_e = (4·4 + 2·2 + 2·2) / 64 = 24/64. κ = (5/8 − 3/8) / (1 − 3/8) = 2/5.
    assert cohen_kappa(x, y) == pytest.approx(0.4, abs=TOL)
    assert sklearn_kappa(x, y) == pytest.approx(0.4, abs=TOL)


@pytest.mark.parametrize("seed", range(300))
def test_cohen_kappa_matches_sklearn_on_random_labels(seed):
    rng = random.Random(seed)
    n = rng.choice([1, 2, 3, 5, 10, 40, 200])
    missing = rng.choice([0.0, 0.1, 0.5])
    x = random_ratings(rng, n, missing)
    # y copies x with some probability, so agreement ranges from chance to perfect
    copy = rng.random()
    y = [
        xi if xi is not None and rng.random() < copy else yi
        for xi, yi in zip(x, random_ratings(rng, n, missing), strict=True)
    ]
    expected = (
        sklearn_kappa(x, y)
        if any(a is not None and b is not None for a, b in zip(x, y, strict=True))
        else None
    )
    got = cohen_kappa(x, y, LABELS)
    if expected is None or math.isnan(expected):
        assert got is None
    else:
        assert got == pytest.approx(expected, abs=TOL)


def test_cohen_kappa_perfect_agreement_and_total_disagreement():
    x = ["a", "b", "tie", "a", "tie"]
    assert cohen_kappa(x, x) == pytest.approx(1.0, abs=TOL)
    swapped = ["b", "a", "a", "b", "b"]
    assert cohen_kappa(x, swapped) == pytest.approx(sklearn_kappa(x, swapped), abs=TOL)
    assert cohen_kappa(x, swapped) < 0
    # each rater always gives one label, different from the other's: p_o = p_e = 0, κ = 0
    assert cohen_kappa(["a"] * 4, ["b"] * 4) == 0.0 == sklearn_kappa(["a"] * 4, ["b"] * 4)


def test_cohen_kappa_is_none_when_expected_agreement_is_one():
    # both raters say "tie" on every item: p_o = p_e = 1, κ = 0/0
    x = y = ["tie", "tie", None, "tie"]
    assert cohen_kappa(x, y) is None
    assert cohen_kappa(x, y, LABELS) is None
    assert math.isnan(sklearn_kappa(x, y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert math.isnan(cohen_kappa_score(["tie"] * 3, ["tie"] * 3, labels=list(LABELS)))


def test_cohen_kappa_is_none_without_common_items():
    assert cohen_kappa([], []) is None
    assert cohen_kappa(["a", None], [None, "b"]) is None


def test_cohen_kappa_ignores_unused_labels():
    x, y = ["a", "b", "a", "b"], ["a", "b", "b", "b"]
    assert cohen_kappa(x, y, LABELS) == cohen_kappa(x, y) == cohen_kappa(x, y, ["b", "a"])


def test_cohen_kappa_rejects_a_rating_outside_labels():
    with pytest.raises(ValueError, match=r"'A'.*not among labels"):
        cohen_kappa(["a", "A"], ["a", "b"], LABELS)


@pytest.mark.parametrize(
    "call",
    [
        lambda x, y: percent_agreement(x, y),
        lambda x, y: cohen_kappa(x, y),
        lambda x, y: confusion_matrix(x, y, LABELS),
    ],
    ids=["percent_agreement", "cohen_kappa", "confusion_matrix"],
)
def test_mismatched_lengths_raise(call):
    with pytest.raises(ValueError, match="same items.*got 3 and 2"):
        call(["a", "b", None], ["a", "b"])


# --- confusion matrix ------------------------------------------------------------------------


def test_confusion_matrix_hand_example():
    judge = ["a", "a", "b", "tie", "tie", "b", None, "a"]
    human = ["a", "b", "b", "a", "tie", "b", "a", None]
    m = confusion_matrix(judge, human, LABELS)
    assert m.labels == LABELS
    assert m.counts == (
        (1, 1, 0),  # judge a: human a once, b once
        (0, 2, 0),  # judge b: human b twice
        (1, 0, 1),  # judge tie: human a once, tie once
    )
    assert m.total == 6
    assert m.count("tie", "a") == 1
    assert m.accuracy == 4 / 6 == percent_agreement(judge, human)
    assert m.kappa == pytest.approx(cohen_kappa(judge, human), abs=TOL)
    assert m.rows() == [("a", (1, 1, 0)), ("b", (0, 2, 0)), ("tie", (1, 0, 1))]


@pytest.mark.parametrize("seed", range(50))
def test_confusion_matrix_matches_sklearn(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 100)
    x, y = random_ratings(rng, n, 0.2), random_ratings(rng, n, 0.2)
    pairs = [(a, b) for a, b in zip(x, y, strict=True) if a is not None and b is not None]
    labels = list(LABELS)
    rng.shuffle(labels)
    m = confusion_matrix(x, y, labels)
    if pairs:
        expected = sk_confusion_matrix([a for a, _ in pairs], [b for _, b in pairs], labels=labels)
        assert [list(row) for row in m.counts] == expected.tolist()
    else:
        assert m.total == 0 and m.accuracy is None and m.kappa is None


def test_confusion_matrix_rejects_unknown_and_duplicate_labels():
    with pytest.raises(ValueError, match="not among labels"):
        confusion_matrix(["a", "c"], ["a", "b"], LABELS)
    with pytest.raises(ValueError, match="unique"):
        confusion_matrix(["a"], ["a"], ["a", "b", "a"])


# --- Krippendorff's alpha --------------------------------------------------------------------


def test_alpha_krippendorff_worked_example():
    # the package's own example (Krippendorff's data, 3 coders × 15 units), nominal 0.691358
    coders = [
        [None, None, None, None, None, 3, 4, 1, 2, 1, 1, 3, 3, None, 3],
        [1, None, 2, 1, 3, 3, 4, 3, None, None, None, None, None, None, None],
        [None, None, 2, 1, 3, 4, 4, None, 2, 1, 1, 3, 3, None, 4],
    ]
    units = [[None if r is None else str(r) for r in unit] for unit in zip(*coders, strict=True)]
    assert krippendorff_alpha_nominal(units) == pytest.approx(0.691358, abs=1e-6)
    assert krippendorff_alpha_nominal(units) == pytest.approx(package_alpha(units), abs=TOL)


@pytest.mark.parametrize("seed", range(300))
def test_alpha_matches_krippendorff_on_random_data(seed):
    rng = random.Random(seed)
    n_raters = rng.randint(2, 6)
    n_units = rng.choice([1, 2, 5, 20, 100])
    missing = rng.choice([0.0, 0.2, 0.5])
    truth = random_ratings(rng, n_units, 0.0)
    care = rng.random()  # how often a rater gives the item's "true" label
    units = [
        [
            None if rng.random() < missing else (t if rng.random() < care else rng.choice(LABELS))
            for _ in range(n_raters)
        ]
        for t in truth
    ]
    got = krippendorff_alpha_nominal(units, LABELS)
    try:
        expected = package_alpha(units)
    except ValueError:  # no pairable unit, or one value in the whole data
        assert got is None
        return
    if math.isnan(expected):
        assert got is None
    else:
        assert got == pytest.approx(expected, abs=TOL)


def test_alpha_with_string_labels_matches_the_package_directly():
    units = [["a", "a", None], ["b", "tie", "b"], ["tie", "tie", "tie"], [None, "a", "b"]]
    data = np.array([[np.nan if r is None else r for r in unit] for unit in units], dtype=object)
    data = data.T.astype(str)  # np.nan becomes "nan", which the package treats as missing
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert krippendorff_alpha_nominal(units) == pytest.approx(expected, abs=TOL)


def test_alpha_perfect_agreement_and_total_disagreement():
    assert krippendorff_alpha_nominal([["a", "a"], ["b", "b", None], ["tie"] * 4]) == 1.0
    units = [["a", "b"], ["b", "tie"], ["tie", "a"]]
    assert krippendorff_alpha_nominal(units) == pytest.approx(package_alpha(units), abs=TOL)
    assert krippendorff_alpha_nominal(units) < 0


def test_alpha_is_none_for_a_single_category():
    # every pairable rating is "tie": D_e = 0. The package returns NaN when other values occur
    # in unpairable units, and raises when the whole data holds one value.
    units = [["tie", "tie"], ["tie", "tie", "tie"], ["a", None]]
    assert krippendorff_alpha_nominal(units) is None
    assert math.isnan(package_alpha(units))
    assert krippendorff_alpha_nominal([["tie", "tie"]]) is None
    with pytest.raises(ValueError, match="more than one value"):
        package_alpha([["tie", "tie"]])


def test_alpha_is_none_without_pairable_units():
    units = [["a", None, None], [None, "b", None], [None, None, None]]
    assert krippendorff_alpha_nominal(units) is None
    assert krippendorff_alpha_nominal([]) is None
    with pytest.raises(ValueError, match="at least two coders"):
        package_alpha(units)


def test_alpha_drops_units_with_fewer_than_two_ratings():
    units = [["a", "a"], ["a", "b"], ["b", "b"], ["tie", "b"]]
    padded = [*units, ["tie", None, None], [None, "a"], [None, None]]
    assert krippendorff_alpha_nominal(padded) == krippendorff_alpha_nominal(units)


def test_alpha_rejects_a_rating_outside_labels():
    with pytest.raises(ValueError, match="not among labels"):
        krippendorff_alpha_nominal([["a", "x"]], LABELS)


# --- many raters -----------------------------------------------------------------------------


RATINGS = {
    "ann": {1: "a", 2: "b", 3: "tie", 4: "a", 5: None},
    "bob": {1: "a", 2: "a", 3: "tie", 5: "b"},
    "cy": {2: "b", 3: "tie", 4: "b", 6: "a"},
}


def test_reliability_units():
    assert reliability_units(RATINGS) == [
        ["a", "a", None],
        ["b", "a", "b"],
        ["tie", "tie", "tie"],
        ["a", None, "b"],
        [None, "b", None],
        [None, None, "a"],
    ]


def test_pairwise_kappas_on_common_items():
    pairs = pairwise_kappas(RATINGS, LABELS)
    assert [(p.rater_a, p.rater_b, p.n_items) for p in pairs] == [
        ("ann", "bob", 3),  # items 1, 2, 3 (ann's 5 is missing, bob has no 4)
        ("ann", "cy", 3),  # items 2, 3, 4
        ("bob", "cy", 2),  # items 2, 3
    ]
    ann_bob = pairs[0]
    assert ann_bob.percent_agreement == 2 / 3
    assert ann_bob.kappa == pytest.approx(
        cohen_kappa_score(["a", "b", "tie"], ["a", "a", "tie"]), abs=TOL
    )


def test_pairwise_kappas_keeps_pairs_without_common_items():
    (pair,) = pairwise_kappas({"ann": {1: "a"}, "bob": {2: "a", 1: None}})
    assert (pair.n_items, pair.percent_agreement, pair.kappa) == (0, None, None)


@pytest.mark.parametrize("seed", range(30))
def test_pairwise_kappas_match_sklearn_per_pair(seed):
    rng = random.Random(seed)
    n_raters, n_items = rng.randint(2, 6), rng.randint(1, 60)
    ratings = {
        f"r{k}": dict(enumerate(random_ratings(rng, n_items, rng.choice([0.0, 0.3]))))
        for k in range(n_raters)
    }
    for pair in pairwise_kappas(ratings, LABELS):
        x = list(ratings[pair.rater_a].values())
        y = list(ratings[pair.rater_b].values())
        assert pair.n_items == sum(
            a is not None and b is not None for a, b in zip(x, y, strict=True)
        )
        assert pair.percent_agreement == percent_agreement(x, y)
        if pair.n_items == 0 or math.isnan(sklearn_kappa(x, y)):
            assert pair.kappa is None
        else:
            assert pair.kappa == pytest.approx(sklearn_kappa(x, y), abs=TOL)


def test_pooled_percent_agreement():
    # unit 1: 3 ratings a, a, b -> 2 agreeing ordered pairs of 6; unit 2: a, a -> 2 of 2;
    # unit 3: one rating, no pair
    assert pooled_percent_agreement([["a", "a", "b"], ["a", "a", None], ["b"]]) == 4 / 8
    assert pooled_percent_agreement([["a"], [None, "b"]]) is None


@pytest.mark.parametrize("seed", range(20))
def test_pooled_percent_agreement_is_percent_agreement_for_two_raters(seed):
    rng = random.Random(seed)
    x, y = random_ratings(rng, 30, 0.3), random_ratings(rng, 30, 0.3)
    assert pooled_percent_agreement(zip(x, y, strict=True)) == percent_agreement(x, y)


def test_agreement_summary():
    summary = agreement_summary(RATINGS, LABELS)
    units = reliability_units(RATINGS)
    assert summary.n_raters == 3
    assert summary.n_items == 6
    assert summary.n_pairable_items == 4  # items 1-4
    assert summary.percent_agreement == pooled_percent_agreement(units)
    assert summary.alpha == pytest.approx(package_alpha(units), abs=TOL)
    assert summary.pairs == pairwise_kappas(RATINGS, LABELS)


# --- consensus -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ratings", "expected"),
    [
        (["a", "a", "b"], "a"),
        (["tie", "tie", None], "tie"),
        (["b"], "b"),
        (["a", "b"], None),  # split vote
        (["a", "a", "b", "tie"], None),  # plurality, not a majority
        (["a", "a", "a", "b", "tie"], "a"),
        ([None, None], None),
        ([], None),
    ],
)
def test_consensus(ratings, expected):
    assert consensus(ratings) == expected
