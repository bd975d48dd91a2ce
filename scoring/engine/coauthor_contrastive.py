"""Co-authoring actions that learn from responses and check the rubric by grading them with
it: contrastive generation of hard rules and principles from a preference pair, kept when it
scores the chosen response higher (OpenRubrics), and refinement by differentiation of the top
responses, round after round (Chasing the Tail), with the add / rewrite / split / delete
changes it proposes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from scoring.engine import prompts
from scoring.engine.coauthor import (
    CONTRASTIVE_SCHEMA,
    STYLE,
    ActionResult,
    ChatClient,
    PromptContext,
    _append_new,
    _Calls,
    _criterion,
    _malformed,
    grade_schema,
    numbered,
    refine_schema,
    score,
    with_new_keys,
)
from scoring.engine.gateway_types import GatewayError

# --- actions ------------------------------------------------------------------------------


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
