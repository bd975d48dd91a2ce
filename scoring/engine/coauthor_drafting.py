"""Co-authoring actions that write or review criteria in one model call: drafting a rubric
for a conversation, critique of the current criteria (flags with suggested rewrites), and
information nuggets from a reference passage. Each returns an `ActionResult` with the
proposed criteria and the usage of the call, failed ones included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from scoring.engine import prompts
from scoring.engine.coauthor import (
    DRAFT_SCHEMA,
    NUGGETS_SCHEMA,
    STYLE,
    ActionResult,
    ChatClient,
    PromptContext,
    _append_new,
    _Calls,
    _criterion,
    _malformed,
    critique_schema,
    numbered,
)
from scoring.engine.gateway_types import GatewayError

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
