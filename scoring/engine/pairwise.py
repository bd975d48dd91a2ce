"""Pairwise comparison: merging the two presentation orders, and which pairs to compare.

LLM judges favour one position (usually the first shown). Every pair is therefore judged
twice: once with response a shown as "Response A" and b as "Response B" (the *first*
order), once with b shown as A and a as B (the *second* order). A winner counts only when
both orders agree; otherwise the pair is a tie flagged position-inconsistent, and
``position_bias`` summarises how often that happened and which position won then.

Pair plans work over one prompt's responses, each given as ``(response_id, source)``
(source: the model or system that wrote it). Ids must be comparable (ints, strings, UUIDs)
and are unique per prompt. Every plan returns a deterministic, sorted list of pairs.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

__all__ = [
    "PositionBias",
    "Verdict",
    "Winner",
    "merge_criteria_orders",
    "merge_orders",
    "plan_all_pairs",
    "plan_sampled",
    "plan_vs_baseline",
    "position_bias",
]

Verdict = Literal["A", "B", "tie"]
Winner = Literal["a", "b", "tie"]
VERDICTS: tuple[Verdict, ...] = ("A", "B", "tie")

# What each order's verdict means for the underlying responses a and b.
_FIRST: dict[str, Winner] = {"A": "a", "B": "b", "tie": "tie"}  # a shown as A
_SECOND: dict[str, Winner] = {"A": "b", "B": "a", "tie": "tie"}  # b shown as A


class _ResponseId(Protocol):
    """What a response id must be: comparable (for sorting) and hashable."""

    def __lt__(self, other: Any, /) -> bool: ...

    def __hash__(self) -> int: ...


Id = TypeVar("Id", bound=_ResponseId)  # a response id: comparable and hashable


def _check(verdict: Any) -> None:
    if verdict not in VERDICTS:
        raise ValueError(f"invalid verdict {verdict!r}: expected 'A', 'B' or 'tie'")


def merge_orders(first: Verdict, second: Verdict) -> tuple[Winner, bool]:
    """(winner, consistent) from the two orders' verdicts. ``first`` was given with a shown
    as A; ``second`` with b shown as A. Agreeing orders give "a", "b", or "tie" (both said
    tie); disagreeing orders give ("tie", False): position-inconsistent."""
    _check(first)
    _check(second)
    winner = _FIRST[first]
    if winner != _SECOND[second]:
        return "tie", False
    return winner, True


def merge_criteria_orders(
    first: Mapping[int, Verdict], second: Mapping[int, Verdict]
) -> dict[int, tuple[Winner, bool]]:
    """``merge_orders`` per criterion id, sorted by id. Both orders must judge the same
    criteria (ValueError naming the ids otherwise)."""
    if set(first) != set(second):
        only_first = sorted(set(first) - set(second))
        only_second = sorted(set(second) - set(first))
        raise ValueError(
            f"the orders judged different criteria: only in the first {only_first}, "
            f"only in the second {only_second}"
        )
    return {cid: merge_orders(first[cid], second[cid]) for cid in sorted(first)}


def _ids(responses: Sequence[tuple[Id, str]]) -> list[Id]:
    ids = [rid for rid, _ in responses]
    if len(set(ids)) != len(ids):
        duplicates = sorted({rid for rid in ids if ids.count(rid) > 1})
        raise ValueError(f"duplicate response ids {duplicates}")
    return sorted(ids)


def plan_all_pairs(responses: Sequence[tuple[Id, str]]) -> list[tuple[Id, Id]]:
    """Every unordered pair once, as (a, b) with a < b, sorted."""
    return list(itertools.combinations(_ids(responses), 2))


def plan_vs_baseline(
    responses: Sequence[tuple[Id, str]], baseline_source: str
) -> list[tuple[Id, Id]]:
    """Each response not from ``baseline_source`` against each response from it, as
    (candidate, baseline), sorted. Empty when the prompt has no baseline response (or
    nothing else)."""
    _ids(responses)
    baselines = sorted(rid for rid, source in responses if source == baseline_source)
    others = sorted(rid for rid, source in responses if source != baseline_source)
    return [(other, base) for other in others for base in baselines]


def plan_sampled(responses: Sequence[tuple[Id, str]], k: int, seed: int) -> list[tuple[Id, Id]]:
    """``k`` distinct unordered pairs (a < b), drawn without replacement by a generator
    seeded from ``seed`` and the prompt's response ids (so each prompt gets its own draw,
    the same every time and whatever order the responses come in); all pairs when fewer
    than ``k`` exist. Sorted."""
    if k < 0:
        raise ValueError("k must not be negative")
    ids = _ids(responses)
    pairs = list(itertools.combinations(ids, 2))
    if k >= len(pairs):
        return pairs
    material = "\x1f".join([str(seed), *(str(rid) for rid in ids)])
    digest = hashlib.sha256(material.encode("utf-8")).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))  # noqa: S311 - sampling, not secrets
    return sorted(rng.sample(pairs, k))


@dataclass(frozen=True)
class PositionBias:
    """How the two presentation orders agreed, for the run page.

    ``inconsistent_share``: inconsistent pairs / pairs (None without pairs).
    ``first_shown_wins`` / ``second_shown_wins``: among the inconsistent pairs, how many
    single-order verdicts picked the response shown first (A) or second (B); ties are not
    counted. ``first_shown_share``: first / (first + second), None when both are 0; near 1
    means the judge favours the first position, near 0 the second."""

    pairs: int
    inconsistent: int
    inconsistent_share: float | None
    first_shown_wins: int
    second_shown_wins: int
    first_shown_share: float | None


def position_bias(results: Iterable[tuple[Verdict, Verdict]]) -> PositionBias:
    """Summary over (first, second) verdict pairs, as given to ``merge_orders``."""
    pairs = inconsistent = first_wins = second_wins = 0
    for first, second in results:
        pairs += 1
        _, consistent = merge_orders(first, second)
        if consistent:
            continue
        inconsistent += 1
        for verdict in (first, second):
            first_wins += verdict == "A"
            second_wins += verdict == "B"
    shown = first_wins + second_wins
    return PositionBias(
        pairs=pairs,
        inconsistent=inconsistent,
        inconsistent_share=inconsistent / pairs if pairs else None,
        first_shown_wins=first_wins,
        second_shown_wins=second_wins,
        first_shown_share=first_wins / shown if shown else None,
    )
