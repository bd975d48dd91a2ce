"""Prompt templates: versioned text files beside this module, rendered into chat messages.

A template file starts with ``version: NAME-vN`` and has a ``--- system`` and a
``--- user`` part; ``$name`` placeholders are filled by ``render``. Change the version
whenever the wording changes: the version is part of every result's cache key and is
recorded with every proposal.

Untrusted text (prompts, responses, reference passages) goes between boundary markers
``<<<NAME KEY>>> … <<<END NAME KEY>>>`` and the instructions are restated after it. The
KEY is an HMAC of the untrusted text under a server secret: unguessable, so the text
cannot close its own block, yet stable for the same input so that cached results are
found again (a fresh random key per call would make every call a cache miss).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from string import Template

PROMPT_DIR = Path(__file__).resolve().parent / "prompts"


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: str
    system: str
    user: str


@cache
def load(name: str) -> PromptTemplate:
    text = (PROMPT_DIR / f"{name}.txt").read_text(encoding="utf-8")
    head, _, rest = text.partition("\n--- system\n")
    system, _, user = rest.partition("\n--- user\n")
    if not head.startswith("version: ") or not system or not user:
        raise ValueError(f"{name}.txt: expected 'version:', '--- system' and '--- user'")
    return PromptTemplate(name, head.removeprefix("version: ").strip(), system, user)


def boundary_key(secret: bytes, *parts: str) -> str:
    digest = hmac.new(secret, "\x1f".join(parts).encode("utf-8"), hashlib.sha256)
    return digest.hexdigest()[:16]


def render(
    template: PromptTemplate,
    *,
    secret: bytes,
    untrusted: dict[str, str],
    optional_blocks: dict[str, tuple[str, str]] | None = None,
    **values: str,
) -> list[dict[str, str]]:
    """Chat messages for ``template``. ``untrusted`` values are placed by the template
    inside its own boundary markers; ``optional_blocks`` maps a placeholder to (LABEL,
    text) and becomes a marked block, or nothing when the text is empty. A text holding
    the marker key is refused (short of breaking HMAC-SHA256 it cannot, but the check costs
    nothing)."""
    blocks = optional_blocks or {}
    texts = [*untrusted.values(), *(text for _, text in blocks.values())]
    nonce = boundary_key(secret, template.version, *texts)
    if any(nonce in text for text in texts):
        raise ValueError("the untrusted text contains the boundary key")
    fields = {**values, **untrusted, "nonce": nonce}
    for name, (label, text) in blocks.items():
        fields[name] = (
            f"\n<<<{label} {nonce}>>>\n{text}\n<<<END {label} {nonce}>>>\n" if text else ""
        )
    return [
        {"role": "system", "content": Template(template.system).substitute(fields).strip()},
        {"role": "user", "content": Template(template.user).substitute(fields).strip()},
    ]


def conversation_text(messages: list[dict[str, str]]) -> str:
    return "\n\n".join(f"[{m.get('role', 'user')}]\n{m.get('content', '')}" for m in messages)
