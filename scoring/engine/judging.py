"""Judge prompts, output schemas and answer parsing for the grading modes.

Modes (the key of ``TEMPLATE_VERSIONS``):

* ``criterion``: one call per (response, criterion), HealthBench's grader: an explanation,
  then ``criteria_met``.
* ``grouped``: one call per response with the whole rubric numbered; one verdict per
  criterion.
* ``holistic``: RaR implicit aggregation: one 1-10 rating per response given the whole rubric
  (normalise with ``aggregate.rar_implicit``).
* ``pairwise``: two responses under the rubric: an overall winner and a winner per criterion
  (merge the two presentation orders with ``pairwise.merge_orders``).

Prompt order is chosen for provider prompt caching, which reuses the longest identical
prefix of a request: the system message holds fixed instructions only (byte-identical
across every call of a mode), and the user message starts with the conversation and the
response(s), then the criterion or rubric, then the task restated. The boundary key
(nonce) of the marked blocks is an HMAC of the conversation and response(s) only, not of
the criteria: all per-criterion calls for one response then share an identical prefix up
to and including the whole response block, and differ only from the criterion on. The
criteria go in blocks marked with that same nonce; a criterion or rubric text containing
it is refused (``ValueError``).

Criteria are numbered 1..count by their position in the ``criteria`` argument in the
grouped, holistic and pairwise prompts, and the parsers return results in that order (or
keyed by that position); ``JudgeCriterion.id`` is the caller's own id and is not shown to
the model. Every schema puts ``explanation`` first so that the model, which writes the
properties in schema order, reasons before it gives its verdict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from string import Template
from typing import Any, cast

from scoring.engine import prompts
from scoring.engine.coauthor import _object
from scoring.engine.pairwise import VERDICTS, Verdict

__all__ = [
    "CRITERION_SCHEMA",
    "HOLISTIC_SCHEMA",
    "TEMPLATE_NAMES",
    "TEMPLATE_VERSIONS",
    "JudgeCriterion",
    "criterion_messages",
    "estimate_tokens",
    "grouped_messages",
    "grouped_schema",
    "holistic_messages",
    "pairwise_messages",
    "pairwise_schema",
    "parse_criterion",
    "parse_grouped",
    "parse_holistic",
    "parse_pairwise",
]

TEMPLATE_NAMES = {
    "criterion": "judge_criterion",
    "grouped": "judge_grouped",
    "holistic": "judge_holistic",
    "pairwise": "judge_pairwise",
}
# mode -> template version, for cache keys and the records of each judgment.
TEMPLATE_VERSIONS: dict[str, str] = {
    mode: prompts.load(name).version for mode, name in TEMPLATE_NAMES.items()
}
RATING_MIN, RATING_MAX = 1, 10
NO_CRITERIA = "(This rubric has no criteria: compare the responses on overall quality.)"


@dataclass(frozen=True)
class JudgeCriterion:
    """A criterion as the judge sees it. ``points`` are HealthBench points or RaR weights
    (negative for a pitfall); ``category`` is essential / important / optional / pitfall
    or empty. ``id`` is the caller's and is not shown to the model."""

    id: int
    text: str
    points: float
    category: str = ""


def estimate_tokens(text: str) -> int:
    """Rough token count: ceil(characters / 4), the usual rule for English text. Only an
    estimate for planning and cost previews: tiktoken needs its encoding files downloaded,
    which is not possible offline, and the judge may not be an OpenAI model anyway. The
    provider's reported usage is the real count."""
    return math.ceil(len(text) / 4)


# --- rendering ----------------------------------------------------------------------------


def _points(points: float) -> str:
    unit = "point" if abs(points) == 1 else "points"
    return f"{points:g} {unit}"


def _label(criterion: JudgeCriterion) -> str:
    parts = [_points(criterion.points)]
    if criterion.category:
        parts.append(criterion.category)
    return f"[{', '.join(parts)}]"


def _one(criterion: JudgeCriterion) -> str:
    return f"{_label(criterion)} {criterion.text.strip()}"


def _numbered(criteria: Sequence[JudgeCriterion]) -> str:
    """``1. [7 points, essential] text``, continuation lines indented under the text."""
    lines = []
    for number, criterion in enumerate(criteria, 1):
        text = criterion.text.strip().replace("\n", "\n   ")
        lines.append(f"{number}. {_label(criterion)} {text}")
    return "\n".join(lines)


def _render(
    mode: str,
    *,
    secret: bytes,
    keyed: dict[str, str],
    marked: dict[str, str],
    **values: str,
) -> list[dict[str, str]]:
    """Messages for ``mode``. ``keyed`` untrusted texts (conversation, responses) determine
    the nonce; ``marked`` untrusted texts (criteria) go in blocks with the same nonce but
    leave it unchanged. Any untrusted text containing the nonce is refused."""
    template = prompts.load(TEMPLATE_NAMES[mode])
    nonce = prompts.boundary_key(secret, template.version, *keyed.values())
    for name, text in [*keyed.items(), *marked.items()]:
        if nonce in text:
            raise ValueError(f"the {name} text contains the boundary key")
    fields = {**values, **keyed, **marked, "nonce": nonce}
    return [
        {"role": "system", "content": Template(template.system).substitute(fields).strip()},
        {"role": "user", "content": Template(template.user).substitute(fields).strip()},
    ]


def _need_criteria(criteria: Sequence[JudgeCriterion]) -> None:
    if not criteria:
        raise ValueError("judging needs at least one criterion")


def criterion_messages(
    conversation: list[dict[str, str]],
    response: str,
    criterion: JudgeCriterion,
    *,
    secret: bytes,
) -> list[dict[str, str]]:
    """Per-criterion mode. Messages for the same conversation and response share a prefix
    through the end of the response block, whatever the criterion."""
    return _render(
        "criterion",
        secret=secret,
        keyed={"conversation": prompts.conversation_text(conversation), "response": response},
        marked={"criterion": _one(criterion)},
    )


def grouped_messages(
    conversation: list[dict[str, str]],
    response: str,
    criteria: Sequence[JudgeCriterion],
    *,
    secret: bytes,
) -> list[dict[str, str]]:
    _need_criteria(criteria)
    return _render(
        "grouped",
        secret=secret,
        keyed={"conversation": prompts.conversation_text(conversation), "response": response},
        marked={"numbered_criteria": _numbered(criteria)},
        count=str(len(criteria)),
    )


def holistic_messages(
    conversation: list[dict[str, str]],
    response: str,
    criteria: Sequence[JudgeCriterion],
    *,
    secret: bytes,
) -> list[dict[str, str]]:
    _need_criteria(criteria)
    return _render(
        "holistic",
        secret=secret,
        keyed={"conversation": prompts.conversation_text(conversation), "response": response},
        marked={"numbered_criteria": _numbered(criteria)},
    )


def pairwise_messages(
    conversation: list[dict[str, str]],
    response_a: str,
    response_b: str,
    criteria: Sequence[JudgeCriterion],
    *,
    secret: bytes,
) -> list[dict[str, str]]:
    """Response A and Response B as given: call twice with the order swapped and merge with
    ``pairwise.merge_orders``. Without criteria the responses are compared overall."""
    return _render(
        "pairwise",
        secret=secret,
        keyed={
            "conversation": prompts.conversation_text(conversation),
            "response_a": response_a,
            "response_b": response_b,
        },
        marked={"numbered_criteria": _numbered(criteria) if criteria else NO_CRITERIA},
        count=str(len(criteria)),
    )


# --- schemas ------------------------------------------------------------------------------

_EXPLANATION = {"type": "string", "maxLength": 4000}
_MET = {"type": "boolean"}
_WINNER = {"type": "string", "enum": list(VERDICTS)}


def _criterion_id(count: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "maximum": max(count, 1)}


def _exactly(item: dict[str, Any], count: int) -> dict[str, Any]:
    return {"type": "array", "items": item, "minItems": count, "maxItems": count}


CRITERION_SCHEMA = _object(explanation=_EXPLANATION, criteria_met=_MET)
HOLISTIC_SCHEMA = _object(
    explanation=_EXPLANATION,
    rating={"type": "integer", "minimum": RATING_MIN, "maximum": RATING_MAX},
)


def grouped_schema(count: int) -> dict[str, Any]:
    """``{"verdicts": [{"criterion_id", "explanation", "criteria_met"}]}``, exactly ``count``
    verdicts (ids 1..count; the schema cannot say "each once": ``parse_grouped`` checks)."""
    if count < 1:
        raise ValueError("judging needs at least one criterion")
    verdict = _object(
        criterion_id=_criterion_id(count), explanation=_EXPLANATION, criteria_met=_MET
    )
    return _object(verdicts=_exactly(verdict, count))


def pairwise_schema(count: int) -> dict[str, Any]:
    """``{"explanation", "criteria": [{"criterion_id", "winner"}], "winner"}`` with exactly
    ``count`` per-criterion winners (none when the rubric is empty)."""
    if count < 0:
        raise ValueError("count must not be negative")
    item = _object(criterion_id=_criterion_id(count), winner=_WINNER)
    return _object(explanation=_EXPLANATION, criteria=_exactly(item, count), winner=_WINNER)


# --- parsing ------------------------------------------------------------------------------
# The gateway has validated the answer against the schema already; these checks repeat the
# essentials (the schema may have been enforced only by prompt) and add what a schema
# cannot say: every id exactly once.


def _field(parsed: Any, name: str) -> Any:
    if not isinstance(parsed, dict) or name not in parsed:
        raise ValueError(f"the answer has no {name!r}")
    return parsed[name]


def _explanation(item: Any) -> str:
    explanation = _field(item, "explanation")
    if not isinstance(explanation, str):
        raise ValueError("the explanation is not a string")
    return explanation


def _by_id(items: Any, count: int, what: str) -> dict[int, Any]:
    """Items keyed by ``criterion_id``; each id 1..count exactly once."""
    if not isinstance(items, list):
        raise ValueError(f"the {what} are not a list")
    found: dict[int, Any] = {}
    for item in items:
        cid = _field(item, "criterion_id")
        if isinstance(cid, bool) or not isinstance(cid, int) or not 1 <= cid <= count:
            raise ValueError(f"criterion_id {cid!r} is not a criterion number 1 to {count}")
        if cid in found:
            raise ValueError(f"criterion {cid} has more than one of the {what}")
        found[cid] = item
    missing = [cid for cid in range(1, count + 1) if cid not in found]
    if missing:
        raise ValueError(f"no {what[:-1]} for criteria {missing}")
    return found


def _met(item: Any) -> bool:
    met = _field(item, "criteria_met")
    if not isinstance(met, bool):
        raise ValueError(f"criteria_met {met!r} is not true or false")
    return met


def _verdict(item: Any) -> Verdict:
    winner = _field(item, "winner")
    if winner not in VERDICTS:
        raise ValueError(f"winner {winner!r} is not 'A', 'B' or 'tie'")
    return cast(Verdict, winner)


def parse_criterion(parsed: Any) -> tuple[bool, str]:
    """(met, explanation) from a per-criterion answer."""
    return _met(parsed), _explanation(parsed)


def parse_grouped(parsed: Any, count: int) -> list[tuple[bool, str]]:
    """One (met, explanation) per criterion 1..count, in order. ValueError naming the
    problem for a duplicate, missing or out-of-range id, or a malformed verdict."""
    found = _by_id(_field(parsed, "verdicts"), count, "verdicts")
    return [(_met(found[cid]), _explanation(found[cid])) for cid in range(1, count + 1)]


def parse_holistic(parsed: Any) -> tuple[int, str]:
    """(rating 1..10, explanation) from a holistic answer."""
    rating = _field(parsed, "rating")
    if isinstance(rating, bool) or not isinstance(rating, int):
        raise ValueError(f"rating {rating!r} is not an integer")
    if not RATING_MIN <= rating <= RATING_MAX:
        raise ValueError(f"rating {rating} is outside {RATING_MIN} to {RATING_MAX}")
    return rating, _explanation(parsed)


def parse_pairwise(parsed: Any, count: int) -> tuple[Verdict, dict[int, Verdict], str]:
    """(overall winner, {criterion id: winner} for ids 1..count, explanation). Verdicts are
    as shown to the model ("A" is Response A of this call). ValueError naming the problem."""
    found = _by_id(_field(parsed, "criteria"), count, "criterion winners")
    criteria = {cid: _verdict(found[cid]) for cid in range(1, count + 1)}
    return _verdict(parsed), criteria, _explanation(parsed)
