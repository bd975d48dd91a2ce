"""Judge prompts for local models, cut into a shared prefix and per-question suffixes.

A local judge reads one probability at the answer position instead of generating, so each
prompt ends with its question and the model's next token is the answer (yes/no, or A/B).
Everything before the question — instructions, conversation, response(s) — is the same for
every criterion of one response: the *prefix*, whose KV cache is computed once. The
question (a criterion, or the rubric) and what follows it is the *suffix*.

A prompt is the concatenation of the prefix's token ids and the suffix's token ids (each
tokenized on its own), never a re-tokenization of the joined text: the shared-prefix and
the full computation then see exactly the same tokens.

Untrusted text goes between boundary markers keyed by an HMAC of the conversation and the
response(s), as in the LLM judge prompts (``engine.prompts``), so a criterion never changes
the prefix. No torch here: only a tokenizer's ``encode`` and ``apply_chat_template``.

The OpenAI-compatible logprob judge sends the same prompts as chat messages
(``criterion_messages``, ``pairwise_messages``): the template's system message and its user
message ending with the question, the very messages the local judge gives its tokenizer's
chat template; the server applies its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from string import Template
from typing import Any

from scoring.engine import prompts
from scoring.engine.judging import JudgeCriterion, _label, _numbered

__all__ = [
    "CRITERION_TEMPLATE",
    "PAIRWISE_TEMPLATE",
    "PromptPieces",
    "criterion_messages",
    "criterion_pieces",
    "pairwise_messages",
    "pairwise_pieces",
    "template_version",
]

CRITERION_TEMPLATE = "local_criterion"
PAIRWISE_TEMPLATE = "local_pairwise"
_SPLIT = "\x00QUESTION\x00"


def template_version(pairwise: bool) -> str:
    return prompts.load(PAIRWISE_TEMPLATE if pairwise else CRITERION_TEMPLATE).version


@dataclass(frozen=True)
class PromptPieces:
    """Token ids: ``prefix`` shared by every ``suffixes[i]``; prompt i is prefix + suffix i."""

    prefix: list[int]
    suffixes: list[list[int]]


def _head_and_tail(tokenizer: Any, system: str, user: str) -> tuple[str, str, bool]:
    """The prompt text before and after the question, and whether the head carries its own
    special tokens (a chat template writes them; plain text gets the tokenizer's BOS)."""
    if getattr(tokenizer, "chat_template", None):
        try:
            text = tokenizer.apply_chat_template(
                [{"role": "system", "content": system}, {"role": "user", "content": user}],
                tokenize=False,
                add_generation_prompt=True,
            )
        except Exception:  # noqa: BLE001 - templates that refuse a system turn raise their own errors
            text = tokenizer.apply_chat_template(
                [{"role": "user", "content": f"{system}\n\n{user}"}],
                tokenize=False,
                add_generation_prompt=True,
            )
        templated = True
    else:
        text = f"{system}\n\n{user}\n\nAnswer:"
        templated = False
    head, found, tail = text.partition(_SPLIT)
    if not found:
        raise ValueError("the chat template dropped the question")
    return head, tail, templated


@dataclass(frozen=True)
class _Rendered:
    """A template filled in for one conversation: the system message, the user message
    with a placeholder where the question goes, and each question's text."""

    system: str
    user: str
    questions: list[str]

    def messages(self, index: int) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": self.user.replace(_SPLIT, self.questions[index])},
        ]


def _render(
    template_name: str,
    keyed: dict[str, str],
    questions: Sequence[str],
    criteria: Sequence[JudgeCriterion],
) -> _Rendered:
    template = prompts.load(template_name)
    secret = _secret()
    nonce = prompts.boundary_key(secret, template.version, *keyed.values())
    named = [*keyed.items(), *((f"criterion {c.id}", c.text) for c in criteria)]
    for name, text in named:
        if nonce in text:
            raise ValueError(f"the {name} text contains the boundary key")
        if _SPLIT in text:
            raise ValueError(f"the {name} text contains a NUL character")
    system = Template(template.system).substitute(nonce=nonce).strip()
    user = Template(template.user).substitute(keyed, nonce=nonce, question=_SPLIT).strip()
    bodies = [Template(question).substitute(nonce=nonce) for question in questions]
    return _Rendered(system, user, bodies)


def _pieces(tokenizer: Any, rendered: _Rendered) -> PromptPieces:
    head, tail, templated = _head_and_tail(tokenizer, rendered.system, rendered.user)
    prefix = tokenizer.encode(head, add_special_tokens=not templated)
    suffixes = [
        tokenizer.encode(body + tail, add_special_tokens=False) for body in rendered.questions
    ]
    return PromptPieces(prefix, suffixes)


def _secret() -> bytes:
    from django.conf import settings

    key: str = settings.SECRET_KEY
    return key.encode()


def _criterion_block(criterion: JudgeCriterion) -> str:
    text = criterion.text.strip().replace("$", "$$")
    return f"<<<CRITERION $nonce>>>\n{_label(criterion)} {text}\n<<<END CRITERION $nonce>>>"


def _criterion_questions(
    conversation: list[dict[str, str]], response: str, criteria: Sequence[JudgeCriterion]
) -> _Rendered:
    questions = [
        _criterion_block(c) + "\n\nDoes the RESPONSE above meet the CRITERION above? "
        "If the criterion has negative points, it is met when the response makes that "
        "mistake. Answer yes or no."
        for c in criteria
    ]
    keyed = {"conversation": prompts.conversation_text(conversation), "response": response}
    return _render(CRITERION_TEMPLATE, keyed, questions, criteria)


def criterion_pieces(
    tokenizer: Any,
    conversation: list[dict[str, str]],
    response: str,
    criteria: Sequence[JudgeCriterion],
) -> PromptPieces:
    """One suffix per criterion, in order: "does the response meet it? yes or no"."""
    return _pieces(tokenizer, _criterion_questions(conversation, response, criteria))


def criterion_messages(
    conversation: list[dict[str, str]], response: str, criteria: Sequence[JudgeCriterion]
) -> list[list[dict[str, str]]]:
    """The chat messages of each criterion's question, in order (what
    ``criterion_pieces`` tokenizes)."""
    rendered = _criterion_questions(conversation, response, criteria)
    return [rendered.messages(i) for i in range(len(rendered.questions))]


def _pairwise_questions(
    conversation: list[dict[str, str]],
    response_a: str,
    response_b: str,
    criteria: Sequence[JudgeCriterion],
) -> _Rendered:
    rubric = _numbered(criteria).replace("$", "$$") if criteria else "(no criteria)"
    questions = [
        f"<<<RUBRIC $nonce>>>\n{rubric}\n<<<END RUBRIC $nonce>>>\n\n"
        "Which response is better overall under the RUBRIC above? Answer A or B."
    ]
    questions += [
        _criterion_block(c) + "\n\nWhich response satisfies the CRITERION above better? "
        "If it has negative points, the better one avoids the mistake. Answer A or B."
        for c in criteria
    ]
    keyed = {
        "conversation": prompts.conversation_text(conversation),
        "response_a": response_a,
        "response_b": response_b,
    }
    return _render(PAIRWISE_TEMPLATE, keyed, questions, criteria)


def pairwise_pieces(
    tokenizer: Any,
    conversation: list[dict[str, str]],
    response_a: str,
    response_b: str,
    criteria: Sequence[JudgeCriterion],
) -> PromptPieces:
    """Suffix 0 asks which response is better overall under the whole rubric; suffix i
    (1..n) which satisfies criterion i better. The answer is A or B."""
    return _pieces(tokenizer, _pairwise_questions(conversation, response_a, response_b, criteria))


def pairwise_messages(
    conversation: list[dict[str, str]],
    response_a: str,
    response_b: str,
    criteria: Sequence[JudgeCriterion],
) -> list[list[dict[str, str]]]:
    """The chat messages of each question, in ``pairwise_pieces``' order: the whole
    rubric first, then each criterion."""
    rendered = _pairwise_questions(conversation, response_a, response_b, criteria)
    return [rendered.messages(i) for i in range(len(rendered.questions))]
