"""Causal rewrites for judge robustness probes: a response rewritten by the co-author LLM
to remove exactly what one criterion asks for (a met criterion) or to add it (an unmet
positive one), everything else kept. A judge that reads the criterion should then flip its
verdict on that criterion (sensitivity) and leave the others as they were (specificity).

Plain Python: the caller supplies the chat client (the Gateway) and plain data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scoring.engine import prompts
from scoring.engine.coauthor import ChatClient, _Calls
from scoring.engine.gateway_types import GatewayError, Usage

REMOVE, ADD = "remove", "add"
TASKS = {
    REMOVE: "Rewrite the response so that it no longer meets the criterion: take out exactly "
    "what the criterion asks for, and nothing else.",
    ADD: "Rewrite the response so that it meets the criterion: add exactly what the "
    "criterion asks for, and nothing else.",
}
SCHEMA_NAMES = {REMOVE: "causal_removal", ADD: "causal_addition"}
REWRITE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"rewritten": {"type": "string", "minLength": 1, "maxLength": 60000}},
    "required": ["rewritten"],
    "additionalProperties": False,
}


@dataclass
class Rewrite:
    text: str  # "" when the call failed or changed nothing
    usage: Usage
    template_version: str
    error: str = ""


def template_version() -> str:
    return prompts.load("rewrite").version


async def rewrite(
    client: ChatClient,
    *,
    conversation: list[dict[str, str]],
    response: str,
    criterion: str,
    points: float,
    direction: str,
    secret: bytes,
) -> Rewrite:
    """The response with the criterion's content removed (``REMOVE``) or added (``ADD``);
    an answer identical to the response is an error (nothing was rewritten)."""
    if direction not in TASKS:
        raise ValueError(f"direction is {REMOVE!r} or {ADD!r}, not {direction!r}")
    template = prompts.load("rewrite")
    messages = prompts.render(
        template,
        secret=secret,
        untrusted={
            "conversation": prompts.conversation_text(conversation),
            "response": response,
            "criterion": f"[{points:g} points] {criterion}",
        },
        task=TASKS[direction],
    )
    calls = _Calls(client)
    try:
        parsed = await calls.chat(
            messages,
            schema=REWRITE_SCHEMA,
            schema_name=SCHEMA_NAMES[direction],
            template_version=template.version,
        )
    except GatewayError as exc:
        return Rewrite("", calls.usage, template.version, exc.message)
    text = str(parsed["rewritten"]).strip()
    if text == response.strip():
        return Rewrite("", calls.usage, template.version, "the rewrite changed nothing")
    return Rewrite(text, calls.usage, template.version)
