"""The registry of export kinds: each kind's name, as exports and their options name it,
to its ``ExportKind`` (its schema, rows and row count), in the order the kinds are listed."""

from __future__ import annotations

from annotation.errors import ApplicationError
from scoring.datasets.kinds import (
    judge_sft,
    pairwise_sft,
    preferences,
    rl_healthbench,
    rl_rar,
    rl_verl,
    rubric_sft,
)
from scoring.datasets.kinds.base import ExportKind

REGISTRY: dict[str, ExportKind] = {
    kind.name: kind
    for kind in (
        rl_verl.KIND,
        rl_healthbench.KIND,
        rl_rar.KIND,
        rubric_sft.KIND,
        preferences.KIND,
        judge_sft.KIND,
        pairwise_sft.KIND,
    )
}


def export_kind(kind: str) -> ExportKind:
    """The export kind named ``kind``."""
    try:
        return REGISTRY[kind]
    except KeyError:
        raise ApplicationError(f"Unknown export kind “{kind}”.") from None
