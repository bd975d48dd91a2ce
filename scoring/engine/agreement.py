"""Agreement between raters on nominal labels: the judge against experts, experts among themselves.

Labels are strings; for pairwise reviews they are "a", "b" and "tie", and "tie" is an ordinary
category like the other two (a rater who says "tie" where another says "a" disagrees). A
missing rating is None: it is skipped, never counted as a label or as a disagreement.

- Two raters, same items (``x[i]`` and ``y[i]`` rate item i): ``percent_agreement``,
  ``cohen_kappa`` and ``confusion_matrix`` use only the items both rated.
- Many raters: ``krippendorff_alpha_nominal`` takes units (one list of ratings per item) and
  ``pooled_percent_agreement`` the same; ``pairwise_kappas`` and ``agreement_summary`` take
  ``{rater: {item: label}}`` and ``reliability_units`` turns that into units.

Undefined statistics are None, never NaN: no pair to compare, or a chance-corrected figure
whose expected disagreement is zero (everybody used one and the same label, so chance alone
explains the agreement). The page shows None as "n/a" with the item count beside it.

The formulas match scikit-learn's ``cohen_kappa_score`` and the ``krippendorff`` package
(tests compare them on random data), written in plain Python with exact integer/rational
arithmetic so the web process needs neither numpy nor SciPy. Costs are O(items + labels²).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import combinations
from typing import Generic, TypeVar

__all__ = [
    "AgreementSummary",
    "ConfusionMatrix",
    "PairAgreement",
    "agreement_summary",
    "cohen_kappa",
    "confusion_matrix",
    "consensus",
    "krippendorff_alpha_nominal",
    "pairwise_kappas",
    "percent_agreement",
    "pooled_percent_agreement",
    "reliability_units",
]

Rating = str | None
RaterT = TypeVar("RaterT", bound=Hashable)
ItemT = TypeVar("ItemT", bound=Hashable)


# --- two raters ------------------------------------------------------------------------------


def _pairs(x: Sequence[Rating], y: Sequence[Rating]) -> list[tuple[str, str]]:
    """The (x[i], y[i]) where both are present. ValueError when the lengths differ."""
    if len(x) != len(y):
        raise ValueError(
            f"x and y must rate the same items, in the same order: got {len(x)} and {len(y)} ratings"
        )
    return [(a, b) for a, b in zip(x, y, strict=True) if a is not None and b is not None]


def _check_labels(labels: Iterable[str]) -> tuple[str, ...]:
    labels = tuple(labels)
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels must be unique: {labels!r}")
    return labels


def _check_known(ratings: Iterable[str], labels: tuple[str, ...]) -> None:
    unknown = set(ratings) - set(labels)
    if unknown:
        raise ValueError(f"ratings {sorted(map(repr, unknown))} are not among labels {labels!r}")


def percent_agreement(x: Sequence[Rating], y: Sequence[Rating]) -> float | None:
    """Share of items on which x and y give the same label: #{i : x_i = y_i} / n, over the n
    items both rated. None when n = 0. Against a reference (the expert's label as y) this is
    the judge's accuracy."""
    pairs = _pairs(x, y)
    if not pairs:
        return None
    return sum(a == b for a, b in pairs) / len(pairs)


def _kappa_from_counts(counts: Sequence[Sequence[int]]) -> float | None:
    """Cohen's κ from a square contingency table (rows: rater x, columns: rater y).

    With n items, n_kk the diagonal, r_k the row sums and c_k the column sums:
    p_o = Σ n_kk / n, p_e = Σ r_k c_k / n², κ = (p_o − p_e) / (1 − p_e)
      = (n·Σ n_kk − Σ r_k c_k) / (n² − Σ r_k c_k), computed in integers and divided once.
    None when n = 0 or p_e = 1 (both raters used one and the same label throughout)."""
    n = sum(map(sum, counts))
    diagonal = sum(counts[k][k] for k in range(len(counts)))
    chance: int = sum(  # zip(*counts) loses the item type
        sum(row) * sum(column)
        for row, column in zip(counts, zip(*counts, strict=True), strict=True)
    )
    if n == 0 or n * n == chance:
        return None
    return (n * diagonal - chance) / (n * n - chance)


@dataclass(frozen=True)
class ConfusionMatrix:
    """Counts of (x label, y label) over the items both rated: ``counts[i][j]`` is the number
    of items x labelled ``labels[i]`` and y labelled ``labels[j]``. For the judge against
    experts, pass the judge as x and the expert (or the experts' consensus) as y."""

    labels: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]

    @property
    def total(self) -> int:
        return sum(map(sum, self.counts))

    @property
    def accuracy(self) -> float | None:
        """Σ diagonal / total, the share of items where x and y agree; None when empty."""
        if not self.total:
            return None
        return sum(self.counts[k][k] for k in range(len(self.labels))) / self.total

    @property
    def kappa(self) -> float | None:
        """Cohen's κ of the table; see ``cohen_kappa``."""
        return _kappa_from_counts(self.counts)

    def count(self, x_label: str, y_label: str) -> int:
        return self.counts[self.labels.index(x_label)][self.labels.index(y_label)]

    def rows(self) -> list[tuple[str, tuple[int, ...]]]:
        """(x label, its row of counts) for each label, in order: what a template iterates."""
        return list(zip(self.labels, self.counts, strict=True))


def confusion_matrix(
    x: Sequence[Rating], y: Sequence[Rating], labels: Sequence[str]
) -> ConfusionMatrix:
    """Confusion matrix of x (rows) against y (columns) over the items both rated, with rows
    and columns in the order of ``labels``. ValueError on a rating outside ``labels``."""
    labels = _check_labels(labels)
    pairs = _pairs(x, y)
    _check_known((r for pair in pairs for r in pair), labels)
    index = {label: k for k, label in enumerate(labels)}
    counts = [[0] * len(labels) for _ in labels]
    for a, b in pairs:
        counts[index[a]][index[b]] += 1
    return ConfusionMatrix(labels, tuple(map(tuple, counts)))


def cohen_kappa(
    x: Sequence[Rating], y: Sequence[Rating], labels: Sequence[str] | None = None
) -> float | None:
    """Cohen's κ of x and y over the items both rated (unweighted, nominal):

        κ = (p_o − p_e) / (1 − p_e),  p_o = Σ_k n_kk / n,  p_e = Σ_k (n_k· / n)(n_·k / n)

    where n_kk counts items both labelled k, and n_k·, n_·k count x's and y's uses of k.
    Equal to ``sklearn.metrics.cohen_kappa_score`` on those items.

    None when no item was rated by both, and when p_e = 1: both raters gave one and the same
    label to every item, so κ is 0/0 (scikit-learn returns NaN and warns there).

    ``labels`` only validates: a rating outside it raises ValueError (scikit-learn would
    silently drop that item instead). Labels nobody used do not change κ."""
    pairs = _pairs(x, y)
    if labels is None:
        labels = list(dict.fromkeys(r for pair in pairs for r in pair))
    return confusion_matrix([a for a, _ in pairs], [b for _, b in pairs], labels).kappa


# --- many raters -----------------------------------------------------------------------------


def krippendorff_alpha_nominal(
    units: Iterable[Sequence[Rating]], labels: Sequence[str] | None = None
) -> float | None:
    """Krippendorff's α for nominal data. ``units`` holds one sequence per item, with one
    rating per rater (None where the rater did not rate it): the reliability matrix of the
    ``krippendorff`` package, transposed. Rater identity plays no part in α, so units may
    have different lengths.

    A unit is pairable when it has m_u ≥ 2 ratings; the others are dropped, as Krippendorff
    defines. Over pairable units, with n_uc the number of c ratings in unit u,
    n_c = Σ_u n_uc and n = Σ_c n_c:

        D_o = (1/n) Σ_u (m_u² − Σ_c n_uc²) / (m_u − 1)   observed disagreement
        D_e = (n² − Σ_c n_c²) / (n (n − 1))              expected disagreement
        α   = 1 − D_o / D_e

    Equal to ``krippendorff.alpha(reliability_data=..., level_of_measurement="nominal")``
    with None as ``np.nan``. None when undefined: no pairable unit (the package raises
    ValueError), or every pairable rating is the same label, so D_e = 0 (the package returns
    NaN, or raises ValueError when the whole data holds one value).

    ``labels`` only validates: a rating outside it raises ValueError."""
    known = _check_labels(labels) if labels is not None else None
    observed = Fraction(0)
    totals: Counter[str] = Counter()
    for unit in units:
        present = [r for r in unit if r is not None]
        if known is not None:
            _check_known(present, known)
        m = len(present)
        if m < 2:
            continue
        counts = Counter(present)
        observed += Fraction(m * m - sum(c * c for c in counts.values()), m - 1)
        totals.update(counts)
    n = sum(totals.values())
    expected = n * n - sum(c * c for c in totals.values())
    if n == 0 or expected == 0:
        return None
    return float(1 - (n - 1) * observed / expected)


def pooled_percent_agreement(units: Iterable[Sequence[Rating]]) -> float | None:
    """Share of agreeing pairs among all pairs of ratings given to the same item:
    Σ_u Σ_c n_uc (n_uc − 1) / Σ_u m_u (m_u − 1), over units with m_u ≥ 2 ratings. With two
    raters this is ``percent_agreement``. None when no unit has two ratings."""
    agreeing = pairs = 0
    for unit in units:
        counts = Counter(r for r in unit if r is not None)
        m = sum(counts.values())
        agreeing += sum(c * (c - 1) for c in counts.values())
        pairs += m * (m - 1)
    return agreeing / pairs if pairs else None


def reliability_units(
    ratings_by_rater: Mapping[RaterT, Mapping[ItemT, Rating]],
) -> list[list[Rating]]:
    """``{rater: {item: label}}`` as units for ``krippendorff_alpha_nominal``: one list per
    item (items in order of first appearance), one entry per rater (in the mapping's order),
    None where that rater has no rating for the item."""
    items = dict.fromkeys(item for ratings in ratings_by_rater.values() for item in ratings)
    return [[ratings.get(item) for ratings in ratings_by_rater.values()] for item in items]


@dataclass(frozen=True)
class PairAgreement(Generic[RaterT]):
    """Two raters compared on the items both rated (``n_items`` of them)."""

    rater_a: RaterT
    rater_b: RaterT
    n_items: int
    percent_agreement: float | None
    kappa: float | None


def pairwise_kappas(
    ratings_by_rater: Mapping[RaterT, Mapping[ItemT, Rating]], labels: Sequence[str] | None = None
) -> list[PairAgreement[RaterT]]:
    """Percent agreement and Cohen's κ for every pair of raters, on their common items (both
    rated, not None). Pairs follow the mapping's order (a before b, as in
    ``itertools.combinations``); pairs with no common item are kept, with n_items = 0 and
    None figures, so the page can say so. Put the judge in the mapping to get judge against
    each expert. ``labels`` validates as in ``cohen_kappa``."""
    result = []
    for a, b in combinations(ratings_by_rater, 2):
        ratings_a, ratings_b = ratings_by_rater[a], ratings_by_rater[b]
        common = [
            item
            for item, label in ratings_a.items()
            if label is not None and ratings_b.get(item) is not None
        ]
        x = [ratings_a[item] for item in common]
        y = [ratings_b[item] for item in common]
        result.append(
            PairAgreement(a, b, len(common), percent_agreement(x, y), cohen_kappa(x, y, labels))
        )
    return result


@dataclass(frozen=True)
class AgreementSummary(Generic[RaterT]):
    """What the "humans against humans" panel shows."""

    n_raters: int
    n_items: int  # items with at least one rating
    n_pairable_items: int  # items with at least two ratings: the ones that count
    percent_agreement: float | None  # pooled over all same-item pairs
    alpha: float | None  # Krippendorff's α, nominal
    pairs: list[PairAgreement[RaterT]]


def agreement_summary(
    ratings_by_rater: Mapping[RaterT, Mapping[ItemT, Rating]], labels: Sequence[str] | None = None
) -> AgreementSummary[RaterT]:
    """Pooled percent agreement, Krippendorff's α and the pairwise κ of ``{rater: {item:
    label}}``. ``labels`` validates as in ``cohen_kappa``."""
    units = reliability_units(ratings_by_rater)
    sizes = [sum(r is not None for r in unit) for unit in units]
    return AgreementSummary(
        n_raters=len(ratings_by_rater),
        n_items=sum(size >= 1 for size in sizes),
        n_pairable_items=sum(size >= 2 for size in sizes),
        percent_agreement=pooled_percent_agreement(units),
        alpha=krippendorff_alpha_nominal(units, labels),
        pairs=pairwise_kappas(ratings_by_rater, labels),
    )


def consensus(ratings: Iterable[Rating]) -> str | None:
    """The label given by a strict majority (more than half) of the present ratings, else
    None: no rating, a split vote (a/b), or a plurality short of half (a, a, b, tie). A "tie"
    verdict is an ordinary label and can be the consensus. Missing ratings (None) are not
    votes. One rating is its own majority; callers that need k reviewers check the count."""
    counts = Counter(r for r in ratings if r is not None)
    if not counts:
        return None
    label, votes = counts.most_common(1)[0]
    return label if 2 * votes > sum(counts.values()) else None
