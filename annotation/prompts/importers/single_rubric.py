"""One rubric as JSON, in HealthBench or RaR shape, for the editor's import and export.

Export writes a record that the dataset importer reads back (HealthBench: ``prompt_id``,
``prompt``, ``rubrics``; RaR: ``id``, ``question``, ``reference_answer``, ``rubric``).
Import takes such a record, a bare list of items of either shape, or an object with only
the ``rubrics`` / ``rubric`` list. Plain Python, no Django.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from annotation.prompts.importers.parsers import healthbench_criteria, rar_criteria
from annotation.prompts.importers.records import ParsedCriterion
from annotation.prompts.importers.validation import InvalidRecord

SHAPES = ("healthbench", "rar")
_RAR_PREFIX = {
    "essential": "Essential Criteria: ",
    "important": "Important Criteria: ",
    "optional": "Optional Criteria: ",
    "pitfall": "Pitfall Criteria: ",
}


class RubricJsonError(ValueError):
    """The file is not a rubric in a known shape; the message names the file and place."""


def _number(points: float) -> int | float:
    return int(points) if float(points).is_integer() else float(points)


def to_healthbench(
    criteria: Sequence[Mapping[str, Any]],
    *,
    prompt_id: str | None = None,
    messages: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if prompt_id is not None:
        out["prompt_id"] = prompt_id
    if messages is not None:
        out["prompt"] = messages
    out["rubrics"] = [
        {"criterion": c["text"], "points": _number(c["points"]), "tags": list(c["tags"])}
        for c in criteria
    ]
    return out


def _title(criterion: Mapping[str, Any]) -> str:
    tags: Iterable[str] = criterion["tags"]
    for tag in tags:
        if tag.startswith("title:"):
            return tag.removeprefix("title:")
    words = criterion["text"].split()
    return " ".join(words[:6]) + ("…" if len(words) > 6 else "")


def to_rar(
    criteria: Sequence[Mapping[str, Any]],
    *,
    prompt_id: str | None = None,
    question: str | None = None,
    reference_answer: str = "",
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if prompt_id is not None:
        out["id"] = prompt_id
    if question is not None:
        out["question"] = question
        out["reference_answer"] = reference_answer
    out["rubric"] = [
        {
            "title": _title(c),
            "description": _RAR_PREFIX.get(c["category"], "") + c["text"],
            "weight": _number(c["points"]),
        }
        for c in criteria
    ]
    return out


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _items(value: Any) -> tuple[Any, str, str]:
    """(items, shape, path) from a record, an object with the list, or a bare list."""
    if isinstance(value, list):
        first = value[0] if value and isinstance(value[0], dict) else {}
        return value, ("rar" if "description" in first else "healthbench"), "items"
    if isinstance(value, dict):
        if "rubrics" in value:
            return value["rubrics"], "healthbench", "rubrics"
        if "rubric" in value:
            return value["rubric"], "rar", "rubric"
    raise RubricJsonError(
        "expected a HealthBench record (with 'rubrics'), a RaR record (with 'rubric'), "
        "or a list of rubric items"
    )


def parse_rubric_json(text: str, *, name: str = "the JSON") -> list[ParsedCriterion]:
    """The criteria of one rubric; raises RubricJsonError naming ``name`` and the place."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise RubricJsonError(
            f"{name}, line {exc.lineno} column {exc.colno}: not valid JSON ({exc.msg})"
        ) from None
    except ValueError as exc:
        raise RubricJsonError(f"{name}: {exc}") from None
    try:
        items, shape, where = _items(value)
        parse = rar_criteria if shape == "rar" else healthbench_criteria
        criteria = parse(items, where)
    except (InvalidRecord, RubricJsonError) as exc:
        raise RubricJsonError(f"{name}: {exc}") from None
    for i, c in enumerate(criteria):
        if not math.isfinite(c.points):
            raise RubricJsonError(f"{name}: {where}[{i}] has points that are not finite")
        # A RaR title that only repeats the start of the text carries nothing.
        c.tags = [t for t in c.tags if t != f"title:{_title({'text': c.text, 'tags': []})}"]
    return criteria
