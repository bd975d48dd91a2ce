"""The answer-token rule of probability judges: which tokens spell an answer, and P(answer).

A probability judge does not generate a verdict: it reads the distribution of the first
token after a prompt that ends with a yes/no (or A/B) question. Both kinds read it by this
one rule:

* the local judge (``scoring.judges.local.judge``) from its model's logits, summing the
  probabilities of every token id of its tokenizer that spells an answer;
* the OpenAI-compatible logprob judge from the ``top_logprobs`` a server returns for the
  first generated token (``reading_from_top_logprobs``).

A token spells ``word`` when its text is the word itself or the word after one space
(``"yes"``, ``" yes"``), case as listed (``yes``, ``Yes``, ``YES``): byte-level BPE writes
" yes" as a token of its own, SentencePiece marks the space with "▁" and decodes a lone
"▁yes" to "yes"; a token such as "\\nyes", "yes." or "yEs" is not an answer. Then

    P(positive) = Σ p(positive spellings) / (Σ p(positive spellings) + Σ p(negative spellings))

and ``mass`` is the denominator: how much of the whole distribution the two answers hold.
A criterion is met when P(yes) ≥ the endpoint's threshold (``is_met``).

Plain Python (no torch, no Django): the web process may import it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "LETTER_A",
    "LETTER_B",
    "NO",
    "YES",
    "NoAnswerError",
    "Reading",
    "answers_for",
    "is_met",
    "is_spelling",
    "logsumexp",
    "reading",
    "reading_from_top_logprobs",
    "spellings",
]

YES = ("yes", "Yes", "YES")
NO = ("no", "No", "NO")
LETTER_A = ("A",)
LETTER_B = ("B",)


def answers_for(*, pairwise: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The (positive, negative) answer words: yes/no for a criterion, A/B for a pair."""
    return (LETTER_A, LETTER_B) if pairwise else (YES, NO)


def spellings(word: str) -> tuple[str, str]:
    """The texts a single token may have to spell ``word``: bare, and after one space."""
    return (word, " " + word)


def is_spelling(text: str, words: Iterable[str]) -> bool:
    """Whether a token whose text is ``text`` spells one of ``words``."""
    return any(text in spellings(word) for word in words)


@dataclass(frozen=True)
class Reading:
    """What the judge says at one answer position: P(positive) against the negative
    answer, and how much of the whole distribution the two answers hold (low mass: the
    model would rather say something else, and its P is less trustworthy)."""

    probability: float
    mass: float


def is_met(probability: float, threshold: float) -> bool:
    """A criterion's verdict from P(yes): met at the threshold and above."""
    return probability >= threshold


class NoAnswerError(ValueError):
    """Neither answer is among the tokens read: there is no probability to report (never
    to be read as "not met")."""


def logsumexp(values: Iterable[float]) -> float:
    """log Σ exp(v), stable; -inf for no values."""
    items = list(values)
    if not items:
        return -math.inf
    top = max(items)
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum(math.exp(v - top) for v in items))


def reading(positive: float, negative: float) -> Reading:
    """The reading from log P(positive answers) and log P(negative answers) (each already
    summed over its spellings): P = p₊ / (p₊ + p₋), mass = p₊ + p₋."""
    if math.isnan(positive) or math.isnan(negative):
        raise ValueError("a log-probability is NaN")
    if positive == negative == -math.inf:
        raise NoAnswerError("neither answer has any probability")
    difference = positive - negative
    # The logistic function of the difference, written so that neither branch overflows.
    if difference >= 0:
        probability = 1.0 / (1.0 + math.exp(-difference))
    else:
        probability = math.exp(difference) / (1.0 + math.exp(difference))
    return Reading(probability, math.exp(logsumexp((positive, negative))))


def reading_from_top_logprobs(
    top: Sequence[tuple[str, float]], *, pairwise: bool = False
) -> Reading:
    """The reading of one answer position from the (token text, log-probability) pairs a
    server returned for it (``top_logprobs``). Every entry that spells an answer counts,
    so two tokens with the same text (two ids) both count, as the local judge sums every
    id. An answer missing from the list contributes nothing (its probability is below the
    last listed one); both missing is a ``NoAnswerError`` naming what was there."""
    positive_words, negative_words = answers_for(pairwise=pairwise)
    positive, negative = [], []
    for token, logprob in top:
        if math.isnan(logprob):
            raise ValueError(f"the log-probability of {token!r} is NaN")
        if is_spelling(token, positive_words):
            positive.append(logprob)
        elif is_spelling(token, negative_words):
            negative.append(logprob)
    if not positive and not negative:
        asked = "/".join((positive_words[0], negative_words[0]))
        seen = ", ".join(repr(token[:20]) for token, _ in top[:5]) or "none"
        raise NoAnswerError(
            f"neither {asked} answer is among the {len(top)} most likely first tokens "
            f"(the most likely: {seen})"
        )
    return reading(logsumexp(positive), logsumexp(negative))
