"""Plain-Python rubric logic for the editor: criterion-level diffs, three-way merge of
concurrent edits, and the checks shown while editing. No Django imports, so it is tested
without a database and can be reused by the API and the htmx views alike.

Criteria are compared by their stable ``key``; position is not part of a criterion's
content (a reorder alone is reported as ``moved``).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

CONTENT_FIELDS = ("text", "points", "category", "kind", "tags")


@dataclass(frozen=True)
class CriterionSnapshot:
    key: str
    text: str
    points: float
    category: str = ""
    kind: str = "principle"
    tags: tuple[str, ...] = ()

    def content(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in CONTENT_FIELDS)

    @classmethod
    def of(cls, criterion: object, key: str | None = None) -> CriterionSnapshot:
        """From anything with the criterion fields (a model row, an edit input)."""
        c: Any = criterion
        return cls(
            key if key is not None else str(c.key),
            c.text.strip(),
            c.points,
            c.category,
            c.kind,
            tuple(c.tags),
        )


# --- diff -------------------------------------------------------------------------------

WordOp = tuple[Literal["equal", "insert", "delete"], str]


def word_diff(old: str, new: str) -> list[WordOp]:
    """Word-level diff. Words and the whitespace between them are separate tokens, so a
    word at the end of the text still matches itself, and the pieces re-join exactly."""
    a, b = re.findall(r"\S+|\s+", old), re.findall(r"\S+|\s+", new)
    ops: list[WordOp] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            ops.append(("equal", "".join(a[i1:i2])))
        if tag in ("delete", "replace"):
            ops.append(("delete", "".join(a[i1:i2])))
        if tag in ("insert", "replace"):
            ops.append(("insert", "".join(b[j1:j2])))
    return ops


@dataclass
class CriterionChange:
    key: str
    status: Literal["added", "removed", "changed", "moved", "unchanged"]
    old: CriterionSnapshot | None
    new: CriterionSnapshot | None
    changed_fields: list[str] = field(default_factory=list)
    text_diff: list[WordOp] = field(default_factory=list)


def diff_criteria(
    old: Sequence[CriterionSnapshot], new: Sequence[CriterionSnapshot]
) -> list[CriterionChange]:
    """Every criterion of ``new`` in its order (added, changed, moved or unchanged), then the
    removed ones in their old order."""
    old_by_key = {c.key: c for c in old}
    old_pos = {c.key: i for i, c in enumerate(old)}
    # Relative order among criteria present in both versions decides "moved".
    common_old = [c.key for c in old if c.key in {n.key for n in new}]
    rank_old = {k: i for i, k in enumerate(common_old)}
    common_new = [c.key for c in new if c.key in old_by_key]
    rank_new = {k: i for i, k in enumerate(common_new)}
    changes: list[CriterionChange] = []
    for c in new:
        before = old_by_key.get(c.key)
        if before is None:
            changes.append(CriterionChange(c.key, "added", None, c))
            continue
        fields_ = [f for f in CONTENT_FIELDS if getattr(before, f) != getattr(c, f)]
        if fields_:
            text = word_diff(before.text, c.text) if "text" in fields_ else []
            changes.append(CriterionChange(c.key, "changed", before, c, fields_, text))
        elif rank_old[c.key] != rank_new[c.key]:
            changes.append(CriterionChange(c.key, "moved", before, c))
        else:
            changes.append(CriterionChange(c.key, "unchanged", before, c))
    new_keys = {c.key for c in new}
    removed = sorted((c for c in old if c.key not in new_keys), key=lambda c: old_pos[c.key])
    changes.extend(CriterionChange(c.key, "removed", c, None) for c in removed)
    return changes


# --- three-way merge ----------------------------------------------------------------------


@dataclass
class MergeConflict:
    key: str
    base: CriterionSnapshot | None
    theirs: CriterionSnapshot | None
    mine: CriterionSnapshot | None


@dataclass
class MergeResult:
    criteria: list[CriterionSnapshot]
    conflicts: list[MergeConflict]

    @property
    def clean(self) -> bool:
        return not self.conflicts


def _content(c: CriterionSnapshot | None) -> tuple[object, ...] | None:
    return None if c is None else c.content()


def merge_criteria(
    base: Sequence[CriterionSnapshot],
    theirs: Sequence[CriterionSnapshot],
    mine: Sequence[CriterionSnapshot],
) -> MergeResult:
    """Merge my edits of ``base`` with a version someone else saved on the same base.

    Changes to different criteria merge automatically; a criterion both sides changed
    differently (including one side deleting it) is a conflict, and the merged list keeps
    my side of it until the person chooses (their side when I deleted it). Order: mine,
    with criteria only they kept placed after the nearest criterion that precedes them in
    their version (first when none does).
    """
    b = {c.key: c for c in base}
    t = {c.key: c for c in theirs}
    m = {c.key: c for c in mine}
    chosen: dict[str, CriterionSnapshot | None] = {}
    conflicts: list[MergeConflict] = []
    for key in [*b, *(k for k in t if k not in b), *(k for k in m if k not in b and k not in t)]:
        bc, tc, mc = _content(b.get(key)), _content(t.get(key)), _content(m.get(key))
        if tc in (mc, bc):
            chosen[key] = m.get(key)
        elif mc == bc:
            chosen[key] = t.get(key)
        else:
            conflicts.append(MergeConflict(key, b.get(key), t.get(key), m.get(key)))
            chosen[key] = m.get(key) if key in m else t.get(key)

    order = [c.key for c in mine if chosen.get(c.key) is not None]
    placed = set(order)
    anchor: str | None = None  # the last of their criteria already in the merged order
    for c in theirs:
        if c.key not in placed and chosen.get(c.key) is not None:
            order.insert(order.index(anchor) + 1 if anchor is not None else 0, c.key)
            placed.add(c.key)
        if c.key in placed:
            anchor = c.key
    merged = [chosen[k] for k in order]
    return MergeResult([c for c in merged if c is not None], conflicts)


# --- checks while editing ---------------------------------------------------------------


@dataclass(frozen=True)
class CheckIssue:
    level: Literal["error", "warning"]
    code: str
    message: str
    key: str | None = None


NEAR_DUPLICATE_RATIO = 0.9


def normalise(text: str) -> str:
    """Lower case, punctuation dropped, whitespace collapsed: the form duplicates share."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


# Verbs that open a rubric requirement ("Advises …", "Warns …"). A joiner followed by one
# of them starts a second requirement; a joiner inside a list of nouns or adjectives
# ("headers and bullet points", "newer, more effective, and proven therapies") does not.
_REQUIREMENT_VERBS = frozenset(
    [
        "acknowledges",
        "addresses",
        "advises",
        "answers",
        "asks",
        "avoids",
        "calculates",
        "checks",
        "cites",
        "clarifies",
        "compares",
        "confirms",
        "considers",
        "corrects",
        "counsels",
        "declines",
        "defines",
        "describes",
        "directs",
        "discusses",
        "emphasises",
        "emphasizes",
        "encourages",
        "ensures",
        "explains",
        "fails",
        "gives",
        "highlights",
        "identifies",
        "includes",
        "indicates",
        "informs",
        "instructs",
        "interprets",
        "lists",
        "maintains",
        "mentions",
        "notes",
        "offers",
        "omits",
        "outlines",
        "points",
        "prompts",
        "proposes",
        "provides",
        "reassures",
        "recognises",
        "recognizes",
        "recommends",
        "refers",
        "refuses",
        "reminds",
        "requests",
        "responds",
        "seeks",
        "specifies",
        "states",
        "stresses",
        "suggests",
        "summarises",
        "summarizes",
        "tells",
        "urges",
        "uses",
        "validates",
        "warns",
    ]
)
_JOINER = re.compile(r"(?:\band\b|\bas well as\b|;)\s+(?:(?:also|then|\w+ly)\s+)?([A-Za-z]+)", re.I)


def _is_requirement_verb(word: str) -> bool:
    word = word.lower()
    return any(w in _REQUIREMENT_VERBS for w in (word, word + "s", word + "es"))


def _is_compound(text: str) -> bool:
    """Several requirements joined by "and" (or "as well as", ";"): the joiner is followed
    by a verb that opens a requirement, as in "Explains the dose and warns about …"."""
    return any(_is_requirement_verb(m.group(1)) for m in _JOINER.finditer(text))


def _similarity(a: str, b: str) -> float:
    """difflib's ratio, skipped (0.0) when its cheap upper bounds already rule out a near
    duplicate: a 60-criterion rubric is 1,770 pairs, checked on every edit."""
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    if matcher.real_quick_ratio() < NEAR_DUPLICATE_RATIO:
        return 0.0
    if matcher.quick_ratio() < NEAR_DUPLICATE_RATIO:
        return 0.0
    return matcher.ratio()


def _sign_problem(c: CriterionSnapshot) -> str:
    """A category whose points point the wrong way: a pitfall rewards what it warns
    against, an essential or important criterion penalises what it asks for."""
    if c.category == "pitfall" and c.points > 0:
        return (
            "A pitfall with positive points rewards the mistake it describes: give it "
            "negative points (or describe what a good response does instead)."
        )
    if c.category in ("essential", "important") and c.points < 0:
        return (
            f"An {c.category} criterion with negative points penalises meeting it: give it "
            "positive points, or make it a pitfall."
        )
    return ""


def check_criteria(criteria: Iterable[CriterionSnapshot]) -> list[CheckIssue]:
    """Errors block a save; warnings are shown inline and saved over."""
    items = list(criteria)
    issues: list[CheckIssue] = []
    seen: dict[str, str] = {}
    normalised: list[str] = []
    for c in items:
        if not c.text.strip():
            issues.append(CheckIssue("error", "empty", "The criterion has no text.", c.key))
            continue
        if not math.isfinite(c.points):
            issues.append(CheckIssue("error", "points", "Points must be a finite number.", c.key))
        norm = normalise(c.text)
        if norm in seen:
            issues.append(
                CheckIssue("error", "duplicate", "Same text as another criterion.", c.key)
            )
        else:
            for other in normalised:
                ratio = _similarity(norm, other)
                if ratio >= NEAR_DUPLICATE_RATIO:
                    issues.append(
                        CheckIssue(
                            "warning",
                            "near_duplicate",
                            f"Nearly the same as another criterion ({ratio:.0%} alike).",
                            c.key,
                        )
                    )
                    break
            seen[norm] = c.key
            normalised.append(norm)
        sign = _sign_problem(c)
        if sign:
            issues.append(CheckIssue("warning", "sign", sign, c.key))
        if _is_compound(c.text):
            issues.append(
                CheckIssue(
                    "warning",
                    "compound",
                    "Joins several requirements; consider splitting it so each can be "
                    "met or missed on its own.",
                    c.key,
                )
            )
    if items and not any(c.points > 0 for c in items):
        issues.append(
            CheckIssue(
                "warning",
                "no_positive_points",
                "No criterion has positive points, so a score would be undefined.",
            )
        )
    return issues
