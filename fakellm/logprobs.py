"""One-token answers with log-probabilities, as vLLM and OpenAI give them for
``logprobs: true, top_logprobs: n, max_tokens: 1``.

Why it exists: the studio's probability judges read P(yes) (or P(A)) from the most likely
first tokens of an answer to a yes/no (or A/B) question. The fake server answers such a
request from a scripted ``LogprobRule`` when one matches (a test sets the probabilities
exactly), else, for the studio's own questions (the local judge's prompts: a RESPONSE and
a CRITERION block, or RESPONSE A and B with a RUBRIC or a CRITERION block), like the
offline judge: P(yes) is high exactly when that judge finds the criterion met (and for a
pair, P(A) above ½ exactly when it prefers A), spread over several spellings of each
answer (" Yes", "Yes", "yes"…) with some mass left to other tokens, as a real model's.

Plain standard library.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from fakellm.judge import _Request, _winner
from fakellm.matching import _criterion_block, _score, coverage, criterion_met, parse_numbered

__all__ = ["LogprobRule", "answer"]

# How each answer is spelled by the first token, and the share of its probability each
# spelling gets; what is left of the distribution goes to tokens that answer nothing.
_YES = ((" Yes", 0.5), ("Yes", 0.3), (" yes", 0.1), ("yes", 0.06), ("YES", 0.04))
_NO = ((" No", 0.5), ("No", 0.3), (" no", 0.1), ("no", 0.06), ("NO", 0.04))
_A = ((" A", 0.55), ("A", 0.45))
_B = ((" B", 0.55), ("B", 0.45))
_OTHER = ("The", " The", "I", "**", "Based", "Response", "\n", "It")
ANSWER_MASS = 0.9
MAX_TOP_LOGPROBS = 20


@dataclass
class LogprobRule:
    """A scripted one-token answer: the first rule whose pattern occurs in the prompt gives
    the ``top_logprobs`` (token text, log-probability); the answer is the most likely."""

    pattern: str
    top_logprobs: list[tuple[str, float]]
    regex: bool = False

    def __post_init__(self) -> None:
        pairs = []
        for entry in self.top_logprobs:
            token, logprob = (
                (entry["token"], entry["logprob"]) if isinstance(entry, dict) else entry
            )
            if not isinstance(token, str) or not isinstance(logprob, int | float):
                raise ValueError(f"a top_logprobs entry is a token and a number: {entry!r}")
            if not math.isfinite(logprob) or logprob > 0:
                raise ValueError(f"the log-probability of {token!r} must be finite and ≤ 0")
            pairs.append((token, float(logprob)))
        if not pairs:
            raise ValueError("a logprob rule needs at least one token")
        self.top_logprobs = pairs
        self._compiled: re.Pattern[str] | None = re.compile(self.pattern) if self.regex else None

    def matches(self, text: str) -> bool:
        if self._compiled is not None:
            return self._compiled.search(text) is not None
        return self.pattern in text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogprobRule:
        """From ``{"pattern", "top_logprobs": [{"token", "logprob"}…], "regex"}``."""
        if not isinstance(data, dict) or "pattern" not in data or "top_logprobs" not in data:
            raise ValueError(f"a logprob rule needs 'pattern' and 'top_logprobs': {data!r}")
        unknown = set(data) - {"pattern", "top_logprobs", "regex"}
        if unknown:
            raise ValueError(f"unknown logprob rule fields {sorted(unknown)}")
        if not isinstance(data["top_logprobs"], list):
            raise ValueError("'top_logprobs' must be a list")
        return cls(str(data["pattern"]), data["top_logprobs"], bool(data.get("regex", False)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "pattern": self.pattern,
            "top_logprobs": [{"token": t, "logprob": lp} for t, lp in self.top_logprobs],
            "regex": self.regex,
        }


def _spread(p: float, positive: tuple[tuple[str, float], ...], negative: tuple[tuple[str, float], ...]) -> list[tuple[str, float]]:  # fmt: skip
    """Token probabilities with P(positive answer) = ``p`` among the answers."""
    tokens = [(t, ANSWER_MASS * p * share) for t, share in positive]
    tokens += [(t, ANSWER_MASS * (1 - p) * share) for t, share in negative]
    tokens += [(t, (1 - ANSWER_MASS) / len(_OTHER)) for t in _OTHER]
    return tokens


def _p_yes(request: _Request) -> float:
    points, criterion = _criterion_block(request.blocks.get("CRITERION", ""))
    if request.obeys("RESPONSE"):
        return 0.95 if points > 0 else 0.05
    response = request.response("RESPONSE")
    share = coverage(response, criterion)
    # Met (the offline judge's verdict) exactly when P(yes) > ½.
    return 0.75 + 0.2 * share if criterion_met(response, criterion) else 0.05 + 0.3 * share


def _p_first(request: _Request) -> float:
    """P(A): above ½ exactly when the offline judge prefers A, ½ for a tie."""
    obeys_a, obeys_b = request.obeys("RESPONSE A"), request.obeys("RESPONSE B")
    if obeys_a != obeys_b:
        return 0.95 if obeys_a else 0.05
    a, b = request.response("RESPONSE A"), request.response("RESPONSE B")
    score_a: float
    score_b: float
    if "CRITERION" in request.blocks:
        points, text = _criterion_block(request.blocks["CRITERION"])
        sign = -1 if points < 0 else 1  # a pitfall is better avoided
        score_a, score_b = sign * criterion_met(a, text), sign * criterion_met(b, text)
    else:
        rubric = parse_numbered(request.blocks.get("RUBRIC", ""))
        if rubric:
            score_a, score_b = _score(a, rubric), _score(b, rubric)
        else:
            asked = request.blocks.get("CONVERSATION", "")
            score_a, score_b = coverage(a, asked), coverage(b, asked)
    winner = _winner(score_a, score_b)
    if winner == "tie":
        return 0.5
    lean = 0.1 + 0.35 * min(1.0, abs(score_a - score_b))
    return 0.5 + lean if winner == "A" else 0.5 - lean


def answer(
    rules: list[LogprobRule], text: str, *, follow_injections: bool = False
) -> list[tuple[str, float]] | None:
    """The first token's (token, log-probability) pairs, most likely first: a scripted
    rule's, or the offline judge's for one of the studio's questions; None for another
    request (the server then answers a plain word)."""
    for rule in rules:
        if rule.matches(text):
            return sorted(rule.top_logprobs, key=lambda pair: -pair[1])
    request = _Request({}, text, follow_injections)
    if "RESPONSE A" in request.blocks and "RESPONSE B" in request.blocks:
        tokens = _spread(_p_first(request), _A, _B)
    elif "RESPONSE" in request.blocks and "CRITERION" in request.blocks:
        tokens = _spread(_p_yes(request), _YES, _NO)
    else:
        return None
    ordered = sorted(tokens, key=lambda pair: -pair[1])
    return [(token, math.log(p)) for token, p in ordered if p > 0]
