"""Rubric-generation SFT: chat ``messages`` in which the user gives a conversation and the
assistant answers with its rubric as JSON (task ``draft``), and, for each of the prompt's
dataset preference labels, the same with the chosen and rejected responses (task
``contrastive``)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from annotation.projects.models import Project
from annotation.prompts.models import PreferenceLabel
from scoring.datasets.kinds.base import (
    RUBRIC_HINT,
    ExportKind,
    Notes,
    Row,
    _batched,
    messages_type,
    versions_field,
)
from scoring.datasets.kinds.prompts import (
    PROMPT_BATCH,
    _in_batch,
    _rubric_items,
    prompt_count,
    prompt_rubrics,
)

RUBRIC_TASK = (
    "Write a grading rubric for the conversation below: a JSON list of criteria, each with "
    '"criterion" (one checkable statement about the next assistant turn), "points" '
    '(negative for a mistake to avoid) and "tags".\n\n'
)
CONTRASTIVE_TASK = (
    "Write a grading rubric for the conversation below that prefers the CHOSEN response to "
    "the REJECTED one for the right reasons: a JSON list of criteria, each with "
    '"criterion", "points" (negative for a mistake to avoid) and "tags".\n\n'
)

if TYPE_CHECKING:
    from scoring.datasets.options import ExportOptions


def _conversation(messages: list[dict[str, str]]) -> str:
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)


def schema(*, conversational: bool = True, whole_points: bool = True, margins: bool = False) -> Any:
    import pyarrow as pa

    messages = messages_type()
    versions = versions_field()
    return pa.schema(
        [
            ("messages", messages),
            ("task", pa.string()),
            ("prompt_id", pa.string()),
            versions,
            ("split", pa.string()),
        ]  # fmt: skip
    )


def _rubric_sft(project: Project, options: ExportOptions, notes: Notes) -> Iterator[Row]:
    for batch in _batched(prompt_rubrics(project, options), PROMPT_BATCH):
        labels: dict[int, list[tuple[str, str]]] = defaultdict(list)
        for prompt_id, chosen, rejected in (
            PreferenceLabel.objects.filter(
                _in_batch("prompt_id", batch), source=PreferenceLabel.Source.DATASET
            )
            .order_by("pk")
            .values_list("prompt_id", "chosen__content", "rejected__content")
        ):
            labels[prompt_id].append((chosen, rejected))
        for pr in batch:
            answer = json.dumps(_rubric_items(pr.criteria, notes), ensure_ascii=False)
            common = {"prompt_id": pr.prompt.external_id, "rubric_version_ids": pr.version_ids,
                      "split": pr.split}  # fmt: skip
            conversation = _conversation(pr.messages)
            yield pr.split, {"messages": [{"role": "user", "content": RUBRIC_TASK + conversation},
                                          {"role": "assistant", "content": answer}],
                             "task": "draft", **common}  # fmt: skip
            for chosen, rejected in labels.get(pr.prompt.pk, []):
                user = (CONTRASTIVE_TASK + conversation
                        + f"\n\n[CHOSEN]\n{chosen}\n\n[REJECTED]\n{rejected}")  # fmt: skip
                yield pr.split, {"messages": [{"role": "user", "content": user},
                                              {"role": "assistant", "content": answer}],
                                 "task": "contrastive", **common}  # fmt: skip


DESCRIPTION = (
    "Supervised fine-tuning data for rubric generation: chat `messages` in which the "
    "user gives a prompt (and, for contrastive generation, a pair of responses) and the "
    "assistant answers with the approved rubric as JSON."
)

KIND = ExportKind(
    "rubric_sft",
    label="Rubric-generation SFT (chat messages)",
    description=DESCRIPTION,
    empty_hint=RUBRIC_HINT,
    schema=schema,
    rows=_rubric_sft,
    count=prompt_count,
    pointed=True,
)
