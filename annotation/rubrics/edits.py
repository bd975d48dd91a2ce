"""Plain-Python edits of a draft's criteria (no Django), used by the editor's service.

A draft criterion is a dict with the keys of ``FIELDS``; ``key`` is the stable UUID (as a
string) that follows a criterion through versions. Every function returns a new list and
leaves its input untouched; bad input raises EditError with a message for the person.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from annotation.prompts.importers.records import CATEGORIES, KINDS

FIELDS = ("key", "text", "points", "category", "kind", "tags", "provenance", "provenance_model")
MAX_TEXT = 5000
MAX_PASTE_LINES = 500
MAX_CRITERIA = 300  # the editing checks compare every pair of criteria
MAX_TAGS = 50
DEFAULT_POINTS = 1.0

Draft = list[dict[str, Any]]


class EditError(ValueError):
    """An edit that cannot be applied; the message says why and where."""


def parse_points(value: object, where: str = "Points") -> float:
    if isinstance(value, bool):
        raise EditError(f"{where} must be a number.")
    try:
        points = float(str(value).strip().replace("\u2212", "-"))  # U+2212 minus sign
    except ValueError:
        raise EditError(f"{where} must be a number, not “{value}”.") from None
    if not math.isfinite(points) or abs(points) > 1e6:
        raise EditError(f"{where} must be a finite number between -1000000 and 1000000.")
    return points


def no_nul(text: str, what: str) -> str:
    if "\x00" in text:
        raise EditError(f"{what} contains a NUL character, which cannot be stored.")
    return text


def parse_tags(value: object) -> list[str]:
    """Tags from a list or a comma-separated string; blanks dropped, order kept, no repeats."""
    items = value if isinstance(value, list | tuple) else str(value or "").split(",")
    tags = list(dict.fromkeys(t for t in (str(i).strip()[:200] for i in items) if t))
    if len(tags) > MAX_TAGS:
        raise EditError(f"A criterion has at most {MAX_TAGS} tags ({len(tags)} given).")
    return [no_nul(t, "A tag") for t in tags]


def clean_fields(data: Mapping[str, object], *, partial: bool = False) -> dict[str, Any]:
    """Validate the editable fields of one criterion. With ``partial``, absent fields are
    left out instead of taking their defaults."""
    out: dict[str, Any] = {}
    if "text" in data or not partial:
        text = str(data.get("text") or "").strip()
        if not text:
            raise EditError("The criterion needs some text.")
        if len(text) > MAX_TEXT:
            raise EditError(f"The criterion is {len(text)} characters; at most {MAX_TEXT}.")
        out["text"] = no_nul(text, "The criterion")
    if "points" in data or not partial:
        raw = data.get("points")
        out["points"] = DEFAULT_POINTS if raw in (None, "") else parse_points(raw)
    if "category" in data or not partial:
        category = str(data.get("category") or "")
        if category not in CATEGORIES:
            raise EditError(f"Unknown category “{category}”.")
        out["category"] = category
    if "kind" in data or not partial:
        kind = str(data.get("kind") or "principle")
        if kind not in KINDS:
            raise EditError(f"Unknown kind “{kind}”.")
        out["kind"] = kind
    if "tags" in data or not partial:
        out["tags"] = parse_tags(data.get("tags"))
    return out


def new_criterion(
    fields: Mapping[str, Any], *, provenance: str = "human", model: str = ""
) -> dict[str, Any]:
    return {
        "key": str(uuid.uuid4()),
        "text": fields["text"],
        "points": fields["points"],
        "category": fields.get("category", ""),
        "kind": fields.get("kind", "principle"),
        "tags": list(fields.get("tags", [])),
        "provenance": provenance,
        "provenance_model": model,
    }


def _index(criteria: Sequence[Mapping[str, Any]], key: str) -> int:
    for i, c in enumerate(criteria):
        if c["key"] == key:
            return i
    raise EditError("That criterion is no longer in the draft; the page was out of date.")


def add(criteria: Draft, fields: Mapping[str, Any], *, after: str | None = None) -> Draft:
    item = new_criterion(fields)
    at = _index(criteria, after) + 1 if after else len(criteria)
    return [*criteria[:at], item, *criteria[at:]]


def update(criteria: Draft, key: str, fields: Mapping[str, Any]) -> Draft:
    """Change some fields; a model-written criterion whose content a person changes
    becomes hybrid (its model name kept)."""
    i = _index(criteria, key)
    item = {**criteria[i], **fields}
    if item["provenance"] == "llm" and any(item[f] != criteria[i][f] for f in fields):
        item["provenance"] = "hybrid"
    return [*criteria[:i], item, *criteria[i + 1 :]]


def check_size(criteria: Draft) -> Draft:
    if len(criteria) > MAX_CRITERIA:
        raise EditError(
            f"A rubric holds at most {MAX_CRITERIA} criteria; this edit would make "
            f"{len(criteria)}. Nothing was changed."
        )
    return criteria


def delete(criteria: Draft, key: str) -> Draft:
    i = _index(criteria, key)
    return [*criteria[:i], *criteria[i + 1 :]]


def duplicate(criteria: Draft, key: str) -> Draft:
    """A copy right after the original, with a new key (it is a new criterion)."""
    i = _index(criteria, key)
    copy = {**criteria[i], "key": str(uuid.uuid4()), "tags": list(criteria[i]["tags"])}
    return [*criteria[: i + 1], copy, *criteria[i + 1 :]]


def move(criteria: Draft, key: str, delta: int) -> Draft:
    i = _index(criteria, key)
    j = max(0, min(len(criteria) - 1, i + delta))
    out = list(criteria)
    out.insert(j, out.pop(i))
    return out


def reorder(criteria: Draft, keys: Sequence[str]) -> Draft:
    """Put the criteria in the order of ``keys``, which must name each exactly once."""
    by_key = {c["key"]: c for c in criteria}
    if len(keys) != len(by_key) or set(keys) != set(by_key):
        raise EditError("The new order does not match the draft; reload the page and try again.")
    return [by_key[k] for k in keys]


_PASTE_POINTS = re.compile(r"^\[\s*([^\]]*?)\s*\]\s*")
_BULLET = re.compile(r"^(?:[-*•]\s+|\d{1,3}[.)]\s+)")


def parse_paste(text: str) -> list[dict[str, Any]]:
    """One criterion per non-blank line, with an optional ``[points]`` prefix (default 1)
    and list bullets ("- ", "* ", "1. ") dropped. Negative points make a pitfall.

    Raises EditError naming every bad line; nothing is taken from a paste with a bad line.
    """
    lines = text.splitlines()
    if len(lines) > MAX_PASTE_LINES:
        raise EditError(f"Paste at most {MAX_PASTE_LINES} lines at a time ({len(lines)} given).")
    parsed: list[dict[str, Any]] = []
    errors: list[str] = []
    for number, raw in enumerate(lines, start=1):
        line = _BULLET.sub("", raw.strip())
        if not line:
            continue
        points = DEFAULT_POINTS
        match = _PASTE_POINTS.match(line)
        if match:
            try:
                points = parse_points(match.group(1), f"Line {number}: the points")
            except EditError as exc:
                errors.append(str(exc))
                continue
            line = line[match.end() :].strip()
        if not line:
            errors.append(f"Line {number}: there is no criterion text after the points.")
            continue
        if len(line) > MAX_TEXT:
            errors.append(f"Line {number}: {len(line)} characters; at most {MAX_TEXT}.")
            continue
        if "\x00" in line:
            errors.append(f"Line {number}: contains a NUL character.")
            continue
        parsed.append(
            {
                "text": line,
                "points": points,
                "category": "pitfall" if points < 0 else "",
                "kind": "principle",
                "tags": [],
            }
        )
    if errors:
        raise EditError("Nothing was added. " + " ".join(errors[:20]))
    if not parsed:
        raise EditError("The paste has no criteria: write one per line.")
    return parsed


def paste(criteria: Draft, text: str) -> Draft:
    return [*criteria, *(new_criterion(fields) for fields in parse_paste(text))]


def same_content(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> bool:
    """Whether two lists hold the same criteria in the same order (provenance aside)."""
    fields = ("key", "text", "points", "category", "kind", "tags")
    return [tuple(_norm(c, f) for f in fields) for c in a] == [
        tuple(_norm(c, f) for f in fields) for c in b
    ]


def _norm(c: Mapping[str, Any], name: str) -> object:
    value = c[name]
    if name == "tags":
        return tuple(value)
    if name == "points":
        return float(value)
    return str(value)
