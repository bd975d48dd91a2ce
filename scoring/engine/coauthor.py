"""LLM co-authoring of rubrics, as in the research the studio builds on: drafting, contrastive
generation from a preference pair with a consistency check (OpenRubrics), refinement by
differentiation of the top responses (Chasing the Tail), critique, and information nuggets
from a reference passage. Plain Python: the caller supplies a chat client (the Gateway)
and plain data, and gets back the proposed criteria; nothing here writes anywhere.

A criterion is a dict ``{key, text, points, category, kind, tags}``; ``key`` is the
existing criterion's key for kept or rewritten criteria and None for new ones.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from scoring.engine import prompts
from scoring.engine.gateway import CallResult, GatewayError, Usage

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


def _criterion(item: dict[str, Any], *, kind: str | None = None, tag: str = "") -> dict:
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


# --- actions ------------------------------------------------------------------------------


async def draft(
    client: ChatClient,
    ctx: PromptContext,
    current: Sequence[dict[str, Any]],
    *,
    style: str,
    secret: bytes,
) -> ActionResult:
    template = prompts.load("draft")
    existing = [*ctx.project_criteria, *(c["text"] for c in current)]
    messages = prompts.render(
        template,
        secret=secret,
        untrusted={"conversation": prompts.conversation_text(ctx.messages)},
        optional_blocks={
            "reference_block": ("REFERENCE ANSWER", ctx.reference_answer),
            "guidelines_block": ("GUIDELINES", ctx.guidelines),
            "project_block": ("CRITERIA THAT ALREADY APPLY", "\n".join(f"- {t}" for t in existing)),
        },
        style_instructions=STYLE[style],
        min_criteria="5",
        max_criteria="15",
    )
    calls = _Calls(client)
    try:
        parsed = await calls.chat(
            messages,
            schema=DRAFT_SCHEMA,
            schema_name="rubric",
            template_version=template.version,
        )
    except GatewayError as exc:
        return ActionResult([], {}, calls.usage, template.version, exc.message)
    new = [_criterion(item) for item in parsed["criteria"]]
    criteria, skipped = _append_new(current, new)
    notes = {"added": len(criteria) - len(current), "skipped_duplicates": skipped}
    return ActionResult(criteria, notes, calls.usage, template.version)


async def _grade(
    calls: _Calls,
    ctx: PromptContext,
    response: str,
    criteria: Sequence[dict[str, Any]],
    *,
    secret: bytes,
) -> list[bool]:
    """One grouped grading call; every criterion must get exactly one verdict."""
    template = prompts.load("grade")
    messages = prompts.render(
        template,
        secret=secret,
        untrusted={
            "conversation": prompts.conversation_text(ctx.messages),
            "response": response,
            "numbered_criteria": numbered(criteria),
        },
        count=str(len(criteria)),
    )
    parsed = await calls.chat(
        messages,
        schema=grade_schema(len(criteria)),
        schema_name="verdicts",
        template_version=template.version,
    )
    by_id: dict[int, bool] = {}
    for verdict in parsed["verdicts"]:
        if verdict["criterion_id"] in by_id:
            raise _malformed(f"criterion {verdict['criterion_id']} graded twice")
        by_id[verdict["criterion_id"]] = verdict["met"]
    missing = [i for i in range(1, len(criteria) + 1) if i not in by_id]
    if missing:
        raise _malformed(f"no verdict for criteria {missing}")
    return [by_id[i] for i in range(1, len(criteria) + 1)]


async def contrastive(
    client: ChatClient,
    ctx: PromptContext,
    current: Sequence[dict[str, Any]],
    *,
    chosen: str,
    rejected: str,
    tries: int,
    style: str,
    secret: bytes,
) -> ActionResult:
    """Hard rules and principles from a preference pair, checked by grading both responses
    with them: a sample that scores the chosen response higher is proposed at once;
    otherwise it is resampled, up to ``tries`` samples. When none reproduces the label the
    last valid sample is still proposed, marked ``reproduced: False`` for the expert."""
    template = prompts.load("contrastive")
    calls = _Calls(client)
    attempts: list[dict[str, Any]] = []
    best: list[dict[str, Any]] | None = None
    for attempt in range(1, max(tries, 1) + 1):
        messages = prompts.render(
            template,
            secret=secret,
            untrusted={
                "conversation": prompts.conversation_text(ctx.messages),
                "chosen": chosen,
                "rejected": rejected,
            },
            style_instructions=STYLE[style],
        )
        if attempt > 1:  # a distinct sample (and cache entry) for each try
            messages[1]["content"] += f"\n(Attempt {attempt} of {tries}: propose afresh.)"
        try:
            parsed = await calls.chat(
                messages,
                schema=CONTRASTIVE_SCHEMA,
                schema_name="contrastive_rubric",
                template_version=template.version,
                temperature=None if attempt == 1 else 0.8,
            )
            proposed = [
                *(_criterion(i, kind="hard_rule") for i in parsed["hard_rules"]),
                *(_criterion(i, kind="principle") for i in parsed["principles"]),
            ]
            if not proposed:
                raise _malformed("no hard rules and no principles")
            met_chosen = await _grade(calls, ctx, chosen, proposed, secret=secret)
            met_rejected = await _grade(calls, ctx, rejected, proposed, secret=secret)
        except GatewayError as exc:
            attempts.append({"attempt": attempt, "error": exc.message})
            continue
        points = [c["points"] for c in proposed]
        s_chosen, s_rejected = score(points, met_chosen), score(points, met_rejected)
        ok = s_chosen is not None and s_rejected is not None and s_chosen > s_rejected
        attempts.append(
            {"attempt": attempt, "score_chosen": s_chosen, "score_rejected": s_rejected}
        )
        best = proposed
        if ok:
            criteria, skipped = _append_new(current, proposed)
            notes = {"reproduced": True, "tries": attempt, "attempts": attempts}
            return ActionResult(criteria, notes, calls.usage, template.version)
    if best is None:
        errors = "; ".join(a.get("error", "") for a in attempts)
        return ActionResult([], {"attempts": attempts}, calls.usage, template.version, errors)
    criteria, _ = _append_new(current, best)
    notes = {"reproduced": False, "tries": len(attempts), "attempts": attempts}
    return ActionResult(criteria, notes, calls.usage, template.version)


def apply_changes(
    current: Sequence[dict[str, Any]], changes: Sequence[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Apply add / rewrite / split / delete changes (criterion ids are 1-based positions in
    ``current``). Returns the new list and a note per change that could not apply."""
    slots: list[list[dict[str, Any]]] = [[dict(c)] for c in current]
    added: list[dict[str, Any]] = []
    skipped: list[str] = []
    touched: set[int] = set()
    for change in changes:
        action, cid = change["action"], change["criterion_id"]
        items = [_criterion(i) for i in change.get("criteria", [])]
        if action == "add":
            added.extend(items) if items else skipped.append("add without a criterion")
            continue
        if not 1 <= cid <= len(current) or cid in touched:
            skipped.append(f"{action} of criterion {cid}: no such criterion, or changed twice")
            continue
        touched.add(cid)
        original = current[cid - 1]
        if action == "delete":
            slots[cid - 1] = []
        elif action == "rewrite" and items:
            slots[cid - 1] = [{**items[0], "key": original.get("key")}]
        elif action == "split" and len(items) >= 2:
            slots[cid - 1] = [{**items[0], "key": original.get("key")}, *items[1:]]
        else:
            skipped.append(f"{action} of criterion {cid} without the criteria it needs")
    merged = [c for slot in slots for c in slot]
    merged, _ = _append_new(merged, added)
    return merged, skipped


async def refine(
    client: ChatClient,
    ctx: PromptContext,
    current: Sequence[dict[str, Any]],
    *,
    responses: Sequence[str],
    rounds: int,
    style: str,
    secret: bytes,
) -> list[ActionResult]:
    """Each round grades the responses with the rubric so far, takes the two best and asks
    for changes that tell them apart; each round is its own proposal."""
    template = prompts.load("refine")
    results: list[ActionResult] = []
    criteria = [dict(c) for c in current]
    for round_ in range(1, max(rounds, 1) + 1):
        calls = _Calls(client)
        try:
            if len(responses) < 2:
                raise _malformed("refining needs at least two responses")
            if not criteria:
                raise _malformed("refining needs a rubric to start from")
            points = [c["points"] for c in criteria]
            scored = []
            for index, response in enumerate(responses):
                met = await _grade(calls, ctx, response, criteria, secret=secret)
                scored.append((score(points, met) or 0.0, -index, response))
            scored.sort(reverse=True)
            (score_a, _, a), (score_b, _, b) = scored[0], scored[1]
            messages = prompts.render(
                template,
                secret=secret,
                untrusted={
                    "conversation": prompts.conversation_text(ctx.messages),
                    "response_a": a,
                    "response_b": b,
                    "numbered_criteria": numbered(criteria),
                },
                style_instructions=STYLE[style],
                score_a=f"{score_a:.2f}",
                score_b=f"{score_b:.2f}",
            )
            parsed = await calls.chat(
                messages,
                schema=refine_schema(len(criteria)),
                schema_name="rubric_changes",
                template_version=template.version,
            )
        except GatewayError as exc:
            results.append(
                ActionResult([], {"round": round_}, calls.usage, template.version, exc.message)
            )
            break
        proposed, skipped = apply_changes(criteria, parsed["changes"])
        proposed = with_new_keys(proposed)  # the next round follows them by key
        notes = {
            "round": round_,
            "scores": [round(s, 4) for s, _, _ in scored],
            "reasons": [c.get("reason", "") for c in parsed["changes"]],
            "skipped": skipped,
        }
        results.append(ActionResult(proposed, notes, calls.usage, template.version))
        criteria = proposed
    return results


async def critique(
    client: ChatClient,
    ctx: PromptContext,
    current: Sequence[dict[str, Any]],
    *,
    secret: bytes,
) -> ActionResult:
    """Flags with suggested rewrites; a flagged criterion with an empty rewrite is proposed
    for deletion."""
    template = prompts.load("critique")
    calls = _Calls(client)
    messages = prompts.render(
        template,
        secret=secret,
        untrusted={
            "conversation": prompts.conversation_text(ctx.messages),
            "numbered_criteria": numbered(current),
        },
    )
    try:
        if not current:
            raise _malformed("there are no criteria to critique")
        parsed = await calls.chat(
            messages,
            schema=critique_schema(len(current)),
            schema_name="critique",
            template_version=template.version,
        )
    except GatewayError as exc:
        return ActionResult([], {}, calls.usage, template.version, exc.message)
    proposed = [dict(c) for c in current]
    flags: dict[str, list[dict[str, str]]] = {}
    deleted: set[int] = set()
    for issue in parsed["issues"]:
        index = issue["criterion_id"] - 1
        if not 0 <= index < len(current):
            continue
        key = str(current[index].get("key"))
        flags.setdefault(key, []).append(
            {"problem": issue["problem"], "explanation": issue["explanation"]}
        )
        rewrite = issue["suggested_rewrite"].strip()
        if rewrite:
            proposed[index] = {**proposed[index], "text": rewrite}
        else:
            deleted.add(index)
    proposed = [c for i, c in enumerate(proposed) if i not in deleted]
    return ActionResult(proposed, {"flags": flags}, calls.usage, template.version)


async def nuggets(
    client: ChatClient,
    ctx: PromptContext,
    current: Sequence[dict[str, Any]],
    *,
    reference: str,
    secret: bytes,
) -> ActionResult:
    template = prompts.load("nuggets")
    calls = _Calls(client)
    messages = prompts.render(
        template,
        secret=secret,
        untrusted={"conversation": prompts.conversation_text(ctx.messages), "reference": reference},
    )
    try:
        if not reference.strip():
            raise _malformed("paste or upload a reference passage first")
        parsed = await calls.chat(
            messages,
            schema=NUGGETS_SCHEMA,
            schema_name="nuggets",
            template_version=template.version,
        )
    except GatewayError as exc:
        return ActionResult([], {}, calls.usage, template.version, exc.message)
    new = [
        {
            "key": None,
            "text": n["text"].strip(),
            "points": 5.0 if n["importance"] == "vital" else 2.0,
            "category": "essential" if n["importance"] == "vital" else "optional",
            "kind": "principle",
            "tags": ["nugget", f"nugget:{n['importance']}"],
        }
        for n in parsed["nuggets"]
    ]
    criteria, skipped = _append_new(current, new)
    notes = {"added": len(criteria) - len(current), "skipped_duplicates": skipped}
    return ActionResult(criteria, notes, calls.usage, template.version)
