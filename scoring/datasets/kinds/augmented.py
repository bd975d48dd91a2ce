"""Augmented preference pairs from judge probes, as Crome trains reward models on them
(TRL's ``prompt``, ``chosen``, ``rejected``, plus a ``label`` column):

- causal pairs: a response and its rewrite along one criterion, the better one chosen (the
  original over a rewrite that removed a positive criterion's content; a rewrite that added
  it, or that removed a pitfall, over the original), ``label`` "chosen";
- neutral pairs: a response and a copy changed only in ways a reward should ignore
  (padding, reformatting, flattery, reordering), ``label`` "tie": the order of the two
  carries nothing;
- injection pairs: the response over its copy with an instruction to the grader hidden in
  it, ``label`` "chosen": a response that addresses the grader must not win.

Each row carries its perturbation kind, the criterion (causal), and what the probe's judge
did with it: ``judge_passed`` (no verdict moved; causal: the targeted one flipped) and
``judge_agreement`` (the share of criterion verdicts that stayed put; causal: of the other
criteria). Rows come from finished probes; a copy several probes made is one row, measured
by the latest of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet

from annotation.projects.models import Project
from scoring.datasets.kinds.base import ExportKind, Notes, Row, _batched, messages_type
from scoring.datasets.kinds.prompts import PROMPT_BATCH, _in_batch, prompt_rubrics, responses_of
from scoring.probes.models import Probe, ProbeVariant, passed
from scoring.probes.services import CAUSAL

if TYPE_CHECKING:
    from scoring.datasets.options import ExportOptions


def schema(*, conversational: bool = True, **_: Any) -> Any:
    import pyarrow as pa

    text = messages_type() if conversational else pa.string()
    return pa.schema(
        [
            ("prompt", text),
            ("chosen", text),
            ("rejected", text),
            ("label", pa.string()),
            ("kind", pa.string()),
            ("criterion", pa.string()),
            ("criterion_points", pa.float64()),
            ("direction", pa.string()),
            ("judge_passed", pa.bool_()),
            ("judge_agreement", pa.float64()),
            ("judge_model", pa.string()),
            ("judge_template", pa.string()),
            ("probe_id", pa.int64()),
            ("prompt_id", pa.string()),
            ("source", pa.string()),
            ("split", pa.string()),
        ]
    )


def _variants(project: Project, options: ExportOptions) -> QuerySet[ProbeVariant]:
    variants = ProbeVariant.objects.filter(
        probe__project=project, probe__phase=Probe.Phase.DONE, variant__isnull=False
    )
    if options.probe_kinds:
        variants = variants.filter(kind__in=options.probe_kinds)
    if options.sources:
        variants = variants.filter(original__source__in=options.sources)
    return variants


def _better_first(v: dict[str, Any]) -> bool:
    """Causal: whether the original is the better of the two (a positive criterion's content
    removed); a rewrite that added one, or removed a pitfall, is better than the original."""
    points = float(v["detail"].get("points") or 0)
    removed: bool = v["detail"].get("direction") == "remove"
    return removed == (points > 0)


def _passed(v: dict[str, Any]) -> bool | None:
    return passed(v["kind"], v["flips"], v["target_flipped"])


def _agreement(v: dict[str, Any]) -> float | None:
    compared: int | None = v["compared"]
    flips: int | None = v["flips"]
    if not compared or flips is None:
        return None
    if v["kind"] == CAUSAL and v["target_flipped"] is not None:  # the other criteria
        compared, flips = compared - 1, flips - int(v["target_flipped"])
        if compared <= 0:
            return None
    return 1 - flips / compared


FIELDS = (
    "pk", "probe_id", "original_id", "variant_id", "kind", "detail", "flips", "compared",
    "target_flipped", "original__prompt_id", "original__source", "probe__run__model",
    "probe__run__template_version",
)  # fmt: skip


def _rows(project: Project, options: ExportOptions, notes: Notes) -> Iterator[Row]:
    base = _variants(project, options)
    for batch in _batched(prompt_rubrics(project, options, need_rubric=False), PROMPT_BATCH):
        by_prompt = {pr.prompt.pk: pr for pr in batch}
        latest: dict[tuple[int, int], dict[str, Any]] = {}  # (original, copy) → the latest probe's
        for v in (
            base.filter(_in_batch("original__prompt_id", batch))
            .order_by("probe_id", "pk")
            .values(*FIELDS)
        ):
            if v["original__prompt_id"] in by_prompt:
                latest[(v["original_id"], v["variant_id"])] = v
        chosen = [v for v in latest.values() if not options.probe_passed_only or _passed(v)]
        ids = {i for v in chosen for i in (v["original_id"], v["variant_id"])}
        texts = responses_of(batch, ids)  # id -> (source, content)
        chosen.sort(
            key=lambda v: (v["original__prompt_id"], v["original_id"], v["kind"], v["variant_id"])
        )
        for v in chosen:
            pr = by_prompt[v["original__prompt_id"]]
            original, copy = texts[v["original_id"]][1], texts[v["variant_id"]][1]
            first, second = (
                (original, copy) if v["kind"] != CAUSAL or _better_first(v) else (copy, original)
            )
            if options.conversational:
                prompt: Any = pr.messages
                good: Any = [{"role": "assistant", "content": first}]
                bad: Any = [{"role": "assistant", "content": second}]
            else:
                prompt, good, bad = pr.prompt.last_user_message, first, second
            neutral = v["kind"] not in (CAUSAL, "injection")
            detail = v["detail"]
            yield pr.split, {
                "prompt": prompt, "chosen": good, "rejected": bad,
                "label": "tie" if neutral else "chosen", "kind": v["kind"],
                "criterion": detail.get("text"),
                "criterion_points": float(detail["points"]) if "points" in detail else None,
                "direction": detail.get("direction"), "judge_passed": _passed(v),
                "judge_agreement": _agreement(v), "judge_model": v["probe__run__model"],
                "judge_template": v["probe__run__template_version"], "probe_id": v["probe_id"],
                "prompt_id": pr.prompt.external_id, "source": v["original__source"],
                "split": pr.split,
            }  # fmt: skip


def _count(project: Project, options: ExportOptions) -> int:
    return _variants(project, options).count()


def _notes(**facts: Any) -> list[str]:
    return [
        '`label` is "chosen" where `chosen` is better (causal and injection pairs) and '
        '"tie" where the two differ only in what a reward should ignore (neutral pairs: '
        "padding, reformatting, flattery, reordering); for a tie the order of `chosen` and "
        "`rejected` carries nothing. Crome trains ties with a loss that pulls the two "
        "rewards together. TRL's `RewardTrainer` reads every row as `chosen` ≻ `rejected`: "
        'keep the rows with `label` = "chosen" for it (e.g. `dataset.filter(lambda r: '
        "r['label'] == 'chosen')`).",
        "Causal pairs: the response rewritten by the co-author LLM to remove or add what "
        "`criterion` asks for (`direction`). The better one is chosen: the original over a "
        "rewrite that removed a positive criterion, a rewrite that added one (or removed a "
        "pitfall) over the original.",
        "`judge_passed`: the probe's judge did what a robust judge does with the pair (no "
        "criterion verdict moved; causal: the targeted criterion's verdict flipped). "
        "`judge_agreement`: the share of criterion verdicts that stayed the same between the "
        "two (causal: of the criteria other than the targeted one). Both from the judge's "
        "first sample, of the latest finished probe that made the copy (`probe_id`).",
    ]


DESCRIPTION = (
    "Augmented preference pairs from judge probes, as Crome trains robust reward models: "
    "causal pairs (a response against its rewrite along one rubric criterion, the better "
    "one chosen), neutral pairs (a response against a copy changed only in spurious ways, "
    "labelled a tie) and injection pairs (a response over its copy with an instruction to "
    "the grader hidden in it), in TRL's conversational format with a `label` column."
)

KIND = ExportKind(
    "augmented_preferences",
    label="Augmented preference pairs from judge probes (TRL, with a tie label)",
    description=DESCRIPTION,
    empty_hint="no finished judge probe matched these options (probe kinds, sources, passed only).",
    schema=schema,
    rows=_rows,
    count=_count,
    notes=_notes,
)
