"""The registry of export kinds: each kind's name, as exports and their options name it,
to its ``ExportKind`` (its schema, rows and row count), in the order the kinds are listed."""

from __future__ import annotations

from annotation.errors import ApplicationError
from scoring.datasets.kinds import (
    augmented,
    judge_sft,
    pairwise_sft,
    preferences,
    rl_healthbench,
    rl_rar,
    rl_trl_grpo,
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
        rl_trl_grpo.KIND,
        preferences.KIND,
        augmented.KIND,
        rubric_sft.KIND,
        judge_sft.KIND,
        pairwise_sft.KIND,
    )
}


# The kinds' labels by name, in the registry's order: the choices of the export form and API.
KINDS = {name: kind.label for name, kind in REGISTRY.items()}


def export_kind(kind: str) -> ExportKind:
    """The export kind named ``kind``."""
    try:
        return REGISTRY[kind]
    except KeyError:
        raise ApplicationError(f"Unknown export kind “{kind}”.") from None
