"""Anthropic hh-rlhf: ``chosen`` / ``rejected`` full transcripts of ``\\n\\nHuman: …`` and
``\\n\\nAssistant: …`` turns, turned into a prompt and a pair of responses."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from annotation.prompts.importers.records import ParsedRecord, ParsedResponse
from annotation.prompts.importers.validation import (
    InvalidRecord,
    as_str,
    external_id,
    get,
    put_metadata,
    rest,
)

HH_RLHF_KEY = "hh_rlhf"

_HH_LABEL = re.compile(r"\n\n(Human|Assistant): ?")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}


@dataclass(frozen=True)
class HHTurn:
    role: str  # "user" or "assistant"
    content: str
    start: int  # where the content starts in the transcript, just after its label


def split_hh_transcript(transcript: str, where: str) -> list[HHTurn]:
    """``"\\n\\nHuman: hi\\n\\nAssistant: hello"`` → user/assistant turns.

    Only the labels (``\\n\\nHuman:`` or ``\\n\\nAssistant:`` and one space) are taken
    off; each turn's content is the source text up to the next label, byte for byte."""
    labels = list(_HH_LABEL.finditer(transcript))
    if not labels or transcript[: labels[0].start()].strip():
        raise InvalidRecord(f"{where} must start with '\\n\\nHuman:'")
    ends = [label.start() for label in labels[1:]] + [len(transcript)]
    return [
        HHTurn(_HH_ROLES[label.group(1)], transcript[label.end() : end], label.end())
        for label, end in zip(labels, ends, strict=True)
    ]


def _hh_turns(obj: Mapping[str, Any], key: str) -> tuple[str, list[HHTurn]]:
    transcript = as_str(get(obj, key), key, non_empty=True)
    turns = split_hh_transcript(transcript, key)
    if turns[-1].role != "assistant":
        raise InvalidRecord(f"{key} must end with an Assistant turn")
    if not any(turn.role == "user" for turn in turns):
        raise InvalidRecord(f"{key} has no Human turn before the final Assistant turn")
    return transcript, turns


def parse_hh_rlhf(obj: Mapping[str, Any], line: int) -> ParsedRecord:
    """A pair of full transcripts. The prompt is the turns both share, cut back so that it
    ends with a Human turn; each side's response is the rest of its transcript.

    Usually the transcripts differ only in the final Assistant turn. In a few records of
    the published files they differ earlier; as TRL does for hh-rlhf, such a response then
    holds the later turns too (``"reply\\n\\nHuman: …\\n\\nAssistant: …"``), and
    ``metadata["hh_rlhf"]`` (of the prompt and of both responses) records where they
    diverged: ``diverged_at_turn`` (1-based, counting Human and Assistant turns) and
    ``prompt_turns`` (how many turns the prompt kept)."""
    chosen_text, chosen = _hh_turns(obj, "chosen")
    rejected_text, rejected = _hh_turns(obj, "rejected")
    shared = 0
    for mine, theirs in zip(chosen, rejected, strict=False):
        if (mine.role, mine.content) != (theirs.role, theirs.content):
            break
        shared += 1
    # The longest shared prefix that ends with a Human turn both sides answer.
    prompt_turns = max(
        (
            i
            for i in range(1, shared + 1)
            if chosen[i - 1].role == "user"
            and i < len(chosen)
            and i < len(rejected)
            and chosen[i].role == rejected[i].role == "assistant"
        ),
        default=0,
    )
    if prompt_turns == 0:
        raise InvalidRecord(
            "chosen and rejected transcripts share no Human turn that both answer, so they "
            "have no common prompt"
        )
    metadata = rest(obj, ("id", "chosen", "rejected"))
    response_metadata: dict[str, Any] = {}
    if shared < max(len(chosen), len(rejected)) - 1:  # they differ before the final turn
        divergence = {"diverged_at_turn": shared + 1, "prompt_turns": prompt_turns}
        put_metadata(metadata, HH_RLHF_KEY, divergence)
        response_metadata = {HH_RLHF_KEY: divergence}
    messages = [{"role": turn.role, "content": turn.content} for turn in chosen[:prompt_turns]]
    return ParsedRecord(
        line=line,
        external_id=external_id(obj, ("id",), messages),
        messages=messages,
        metadata=metadata,
        responses=[
            ParsedResponse(
                "hh-chosen", chosen_text[chosen[prompt_turns].start :], dict(response_metadata)
            ),
            ParsedResponse(
                "hh-rejected",
                rejected_text[rejected[prompt_turns].start :],
                dict(response_metadata),
            ),
        ],
        preference=(0, 1),
    )
