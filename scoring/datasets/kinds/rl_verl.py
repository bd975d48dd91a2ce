"""RL prompts with rubric rewards, in verl's shape: ``data_source``, ``prompt``,
``ability``, ``reward_model`` (the rubric) and ``extra_info``, which repeats ``prompt`` and
``reward_model`` where rubric rewards read them (verl's loader pops the top-level prompt)
beside the prompt's id, split, index, rubric versions, full rubric and metadata."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from annotation.projects.models import Project
from scoring.datasets.kinds.base import (
    RUBRIC_HINT,
    ExportKind,
    Notes,
    Row,
    messages_type,
    metadata_field,
    rubric_item_type,
    versions_field,
)
from scoring.datasets.kinds.prompts import (
    _metadata_json,
    _rubric_items,
    _rubric_json,
    prompt_count,
    prompt_rubrics,
)

if TYPE_CHECKING:
    from scoring.datasets.options import ExportOptions


def schema(*, conversational: bool = True, whole_points: bool = True, margins: bool = False) -> Any:
    import pyarrow as pa

    messages = messages_type()
    rubric_item = rubric_item_type(whole_points)
    versions = versions_field()
    metadata = metadata_field()
    reward_model = pa.struct(
        [
            ("style", pa.string()),
            ("rubrics", pa.list_(rubric_item)),
            ("ground_truth", pa.string()),
        ]
    )
    return pa.schema(
        [
            ("data_source", pa.string()),
            ("prompt", messages),
            ("ability", pa.string()),
            ("reward_model", reward_model),
            (
                "extra_info",
                pa.struct(
                    [
                        ("prompt_id", pa.string()),
                        ("split", pa.string()),
                        ("index", pa.int64()),
                        versions,
                        ("rubric", pa.string()),
                        metadata,
                        # verl's loader pops the top-level prompt: rubric rewards read
                        # these copies (RuscaRL's HealthBench reward does).
                        ("prompt", messages),
                        ("reward_model", reward_model),
                    ]
                ),
            ),
        ]  # fmt: skip
    )


def _rl_verl(project: Project, options: ExportOptions, notes: Notes) -> Iterator[Row]:
    for index, pr in enumerate(prompt_rubrics(project, options)):
        reward_model = {
            "style": "rubric",
            "rubrics": _rubric_items(pr.criteria, notes),
            "ground_truth": pr.prompt.reference_answer,
        }
        yield (
            pr.split,
            {
                "data_source": f"rubricstudio/{project.slug}",
                "prompt": pr.messages,
                "ability": "rubric",
                "reward_model": reward_model,
                "extra_info": {
                    "prompt_id": pr.prompt.external_id,
                    "split": pr.split,
                    "index": index,
                    "rubric_version_ids": pr.version_ids,
                    "rubric": _rubric_json(pr.criteria, notes),
                    "metadata": _metadata_json(pr),
                    "prompt": pr.messages,
                    "reward_model": reward_model,
                },
            },
        )


def _notes(**facts: Any) -> list[str]:
    """Where verl's rubric rewards read the rubric and the metadata."""
    notes = []
    notes.append(
        "`extra_info.prompt` and `extra_info.reward_model` hold the same values as the "
        "top-level `prompt` and `reward_model`: verl's `RLHFDataset` pops the top-level "
        "`prompt`, so rubric rewards (RuscaRL's HealthBench reward, for one) read the "
        'conversation from `extra_info["prompt"]` and the rubric from '
        '`extra_info["reward_model"]["rubrics"]`.'
    )
    notes.append(
        "`extra_info.metadata` is a JSON object, as a string, of the source record's "
        "fields that have no column of their own (HealthBench `example_tags`, ResearchQA "
        "`citation_metadata`, …); `{}` when there are none."
    )
    return notes


DESCRIPTION = (
    "Prompts for reinforcement learning with rubric rewards, as "
    "[verl](https://github.com/volcengine/verl) reads them: `data_source`, `prompt` "
    "(chat messages), `ability`, `reward_model` (`style` = `rubric`, the `rubrics` as "
    "`criterion` / `points` / `tags`, and `ground_truth`) and `extra_info` (ids, split, "
    "the rubric versions the row was built from, the prompt's source metadata, and "
    "copies of `prompt` and `reward_model` for the reward function)."
)

KIND = ExportKind(
    "rl_verl",
    label="RL prompts with rubric rewards (verl)",
    description=DESCRIPTION,
    empty_hint=RUBRIC_HINT,
    schema=schema,
    rows=_rl_verl,
    count=prompt_count,
    pointed=True,
    notes=_notes,
)
