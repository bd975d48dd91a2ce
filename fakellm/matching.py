"""How the offline judge reads text: content words, coverage, and the studio's prompt blocks.

A criterion's content words are the words that say what it asks for (phrasing words such as
"mentions" or "clearly" are dropped), lower-cased and crudely stemmed; a response covers a
criterion by the share of those words it contains. Also here: reading the marked blocks of a
studio prompt and its numbered rubric lines, and a rubric's score for a response.
"""

from __future__ import annotations

import re
from collections import Counter

__all__ = ["coverage", "criterion_met", "parse_numbered", "terms"]

_BLOCK = re.compile(r"<<<([A-Z][A-Z ]*?) ([0-9a-f]{16})>>>\n(.*?)\n<<<END \1 \2>>>", re.DOTALL)
_NUMBERED = re.compile(r"^(\d+)\. \[([^\]]*)\] ?(.*)$")
_WORD = re.compile(r"[a-z0-9]+")
_POINTS = re.compile(r"-?\d+(?:\.\d+)?")

# Words that say how a criterion is phrased, not what it asks for.
_STOP_WORDS = """
a about above after again against all also an and any are as at be because been before
being below between both but by can could did do does doing down during each either else
few for from further had has have having here how if in into is it its itself just least
less like made make many may might more most much must neither no nor not now of off on
once one only or other otherwise our out over own per rather same should since so some
such than that the their them then there these they this those through to too under until
up upon very was way we were what when where whether which while who whom why will with
within without would yet you your response responses answer answers assistant user model
mentions mention mentioned states state stated says say explains explain explained
includes include including provides provide provided gives give given suggests suggest
recommends recommend advises advise asks ask notes note describes describe discusses
discuss addresses address covers cover uses use using clearly correctly appropriately
specific specifically relevant appropriate important whether criterion criteria etc
"""
_STOP = frozenset(_STOP_WORDS.split())
_SUFFIXES = ("ingly", "edly", "ations", "ation", "ings", "ing", "ies", "ied", "ed", "es", "ly", "s")
MET_AT = 0.5  # share of a criterion's content words the response must cover


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:7]


def terms(text: str) -> list[str]:
    """Content words of ``text``, lower-cased and crudely stemmed, in order, repeats kept."""
    return [_stem(w) for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in _STOP]


def _words(text: str) -> list[str]:
    """Content words as written (for criteria and explanations people read)."""
    return [w for w in _WORD.findall(text.lower()) if len(w) > 3 and w not in _STOP]


def coverage(response: str, criterion: str) -> float:
    """Share of the criterion's distinct content words that the response contains."""
    wanted = set(terms(criterion))
    if not wanted:
        return 0.0
    return len(wanted & set(terms(response))) / len(wanted)


def criterion_met(response: str, criterion: str) -> bool:
    """Met when the response covers at least half of what the criterion names. For a
    pitfall (negative points) "met" means the response makes the mistake it describes,
    which is the same test: the response contains what the pitfall names."""
    return coverage(response, criterion) >= MET_AT


def _explain(response: str, criterion: str, met: bool) -> str:
    wanted = {_stem(w): w for w in reversed(_words(criterion))}
    have = set(terms(response))
    found = [w for s, w in wanted.items() if s in have]
    missing = [w for s, w in wanted.items() if s not in have]
    parts = []
    if found:
        parts.append("The response covers " + ", ".join(sorted(found)[:6]))
    if missing:
        parts.append("it does not cover " + ", ".join(sorted(missing)[:6]))
    detail = "; ".join(parts) if parts else "the criterion names nothing the response could cover"
    return f"{detail[0].upper()}{detail[1:]}. Verdict: {'met' if met else 'not met'}."


def blocks(text: str) -> dict[str, str]:
    """The marked blocks of a studio prompt, by label (``RESPONSE A``, ``RUBRIC``…)."""
    return {label: body for label, _, body in _BLOCK.findall(text)}


def parse_numbered(text: str) -> list[tuple[float, str]]:
    """``1. [7 points, essential] text`` lines (continuation lines indented) as
    (points, text); also the co-author form ``1. [7] text``."""
    items: list[tuple[float, str]] = []
    for line in text.splitlines():
        match = _NUMBERED.match(line)
        if match:
            number = _POINTS.search(match.group(2))
            items.append((float(number.group()) if number else 1.0, match.group(3)))
        elif items and line.startswith("   "):
            points, body = items[-1]
            items[-1] = (points, f"{body}\n{line[3:]}")
    return items


def _criterion_block(text: str) -> tuple[float, str]:
    match = re.match(r"\[([^\]]*)\] ?(.*)", text, re.DOTALL)
    if not match:
        return 1.0, text
    number = _POINTS.search(match.group(1))
    return (float(number.group()) if number else 1.0), match.group(2)


def _score(response: str, rubric: list[tuple[float, str]]) -> float:
    """HealthBench's score of the response under the rubric, 0 when nothing is positive."""
    positive = sum(p for p, _ in rubric if p > 0)
    if positive <= 0:
        return 0.0
    return sum(p for p, text in rubric if criterion_met(response, text)) / positive


def _key_words(
    text: str, exclude: frozenset[str] | set[str] = frozenset(), limit: int = 6
) -> list[str]:
    """The most frequent content words of ``text`` (first seen wins ties), one per stem."""
    counts: Counter[str] = Counter()
    spelling: dict[str, str] = {}
    for word in _words(text):
        stem = _stem(word)
        if stem in exclude:
            continue
        counts[stem] += 1
        spelling.setdefault(stem, word)
    order = sorted(counts, key=lambda s: -counts[s])
    return [spelling[s] for s in order[:limit]]
