"""LLM co-authoring of rubrics, as in the research the studio builds on: drafting, contrastive
generation from a preference pair with a consistency check (OpenRubrics), refinement by
differentiation of the top responses (Chasing the Tail), critique, and information nuggets
from a reference passage. Plain Python: the caller supplies a chat client (the Gateway)
and plain data, and gets back the proposed criteria; nothing here writes anywhere.

A criterion is a dict ``{key, text, points, category, kind, tags}``; ``key`` is the
existing criterion's key for kept or rewritten criteria and None for new ones.

This module holds what the actions share: the criteria's categories and the scoring styles,
the chat client they call, the context and the result of an action, the JSON schemas of the
answers and the helpers that turn answers into criteria. The actions are in
`coauthor_drafting` (draft, critique, nuggets) and `coauthor_contrastive` (contrastive
generation and refinement, which grade responses with the rubric they propose).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from scoring.engine.gateway_types import CallResult, GatewayError, Usage

CATEGORIES = ["essential", "important", "optional", "pitfall"]
PROBLEMS = ["vague", "compound", "overlapping", "unverifiable", "non_discriminating"]
MAX_NEW = 40

STYLE = {
    "healthbench": (
        "Give each criterion points from -10 to 10 by importance (negative for a pitfall), "
        "category pitfall for negative items and essential, important or optional "
        "otherwise, and tags naming the axis it grades, such as axis:accuracy, "
        "axis:completeness, axis:communication_quality, axis:context_awareness or "
        "axis:instruction_following."
    ),
    "rar": (
        "Give each criterion a category and the matching weight as its points: essential "
        "5, important 3 or 4, optional 1 or 2, pitfall -1 or -2."
    ),
}


class ChatClient(Protocol):
    async def chat(
        self,
        messages: list[dict[str, str]],
        *,
        schema: dict[str, Any] | None = None,
        schema_name: str = "answer",
        template_version: str = "",
        temperature: float | None = None,
    ) -> CallResult: ...


@dataclass
class PromptContext:
    messages: list[dict[str, str]]
    reference_answer: str = ""
    guidelines: str = ""
    project_criteria: list[str] = field(default_factory=list)


@dataclass
class ActionResult:
    criteria: list[dict[str, Any]]
    notes: dict[str, Any]
    usage: Usage
    template_version: str
    error: str = ""


# --- schemas ------------------------------------------------------------------------------


def _item(*, with_kind: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "text": {"type": "string", "minLength": 3, "maxLength": 1000},
        "points": {"type": "number", "minimum": -10, "maximum": 10},
        "category": {"type": "string", "enum": CATEGORIES},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 100}, "maxItems": 8},
    }
    required = ["text", "points", "category"]
    if with_kind:
        properties["kind"] = {"type": "string", "enum": ["hard_rule", "principle"]}
        required.append("kind")
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _list(item: dict[str, Any], *, min_items: int = 1) -> dict[str, Any]:
    return {"type": "array", "items": item, "minItems": min_items, "maxItems": MAX_NEW}


def _object(**properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


DRAFT_SCHEMA = _object(criteria=_list(_item(with_kind=True)))
CONTRASTIVE_SCHEMA = _object(
    hard_rules=_list(_item(with_kind=False), min_items=0),
    principles=_list(_item(with_kind=False), min_items=0),
)
NUGGETS_SCHEMA = _object(
    nuggets=_list(
        _object(
            text={"type": "string", "minLength": 3, "maxLength": 1000},
            importance={"type": "string", "enum": ["vital", "okay"]},
        )
    )
)


def _id(count: int, *, minimum: int = 1) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, "maximum": max(count, minimum)}


def grade_schema(count: int) -> dict[str, Any]:
    verdict = _object(criterion_id=_id(count), met={"type": "boolean"})
    return _object(verdicts={**_list(verdict), "maxItems": max(count, 1)})


def critique_schema(count: int) -> dict[str, Any]:
    issue = _object(
        criterion_id=_id(count),
        problem={"type": "string", "enum": PROBLEMS},
        explanation={"type": "string", "maxLength": 1000},
        suggested_rewrite={"type": "string", "maxLength": 1000},
    )
    return _object(issues=_list(issue, min_items=0))


def refine_schema(count: int) -> dict[str, Any]:
    change = _object(
        action={"type": "string", "enum": ["add", "rewrite", "split", "delete"]},
        criterion_id=_id(count, minimum=0),
        criteria=_list(_item(with_kind=True), min_items=0),
        reason={"type": "string", "maxLength": 1000},
    )
    return _object(changes=_list(change, min_items=0))


# --- helpers ------------------------------------------------------------------------------


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _criterion(item: dict[str, Any], *, kind: str | None = None, tag: str = "") -> dict[str, Any]:
    tags = [str(t) for t in item.get("tags", [])]
    if tag and tag not in tags:
        tags.append(tag)
    return {
        "key": None,
        "text": str(item["text"]).strip(),
        "points": float(item["points"]),
        "category": item["category"],
        "kind": kind or item.get("kind", "principle"),
        "tags": tags,
    }


def _append_new(
    current: Sequence[dict[str, Any]], new: Sequence[dict[str, Any]]
) -> tuple[list[dict[str, Any]], int]:
    """Current criteria followed by the new ones whose text is not already there."""
    seen = {_normalise(c["text"]) for c in current}
    out, skipped = [dict(c) for c in current], 0
    for c in new:
        norm = _normalise(c["text"])
        if not norm or norm in seen:
            skipped += 1
            continue
        seen.add(norm)
        out.append(c)
    return out, skipped


def with_new_keys(criteria: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Criteria without a key (new ones, written by the model) get one."""
    return [
        c if c.get("key") else {**c, "key": str(uuid.uuid4()), "provenance": "llm"}
        for c in criteria
    ]


def numbered(criteria: Sequence[dict[str, Any]]) -> str:
    return "\n".join(f"{i}. [{c['points']:g}] {c['text']}" for i, c in enumerate(criteria, 1))


def score(points: Sequence[float], met: Sequence[bool]) -> float | None:
    """HealthBench: points of met items (negatives included) over the positive points."""
    positive = sum(p for p in points if p > 0)
    if positive <= 0:
        return None
    return sum(p for p, m in zip(points, met, strict=True) if m) / positive


def _malformed(message: str) -> GatewayError:
    """An answer that parsed but makes no sense for the task (or a task that cannot run)."""
    return GatewayError("malformed", message)


class _Calls:
    """Accumulates usage over an action's calls, failed ones included."""

    def __init__(self, client: ChatClient) -> None:
        self.client = client
        self.usage = Usage()

    async def chat(self, messages: list[dict[str, str]], **kwargs: Any) -> Any:
        try:
            result = await self.client.chat(messages, **kwargs)
        except GatewayError as exc:
            self.usage = self.usage + exc.usage
            raise
        self.usage = self.usage + result.usage
        return result.parsed
