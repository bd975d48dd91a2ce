"""Preference pairs for reward models and DPO (TRL's ``prompt``, ``chosen``, ``rejected``):
one row per (prompt, chosen text, rejected text), from the labels of the chosen origins:
the dataset's, the experts' (with the reviewers' agreement) and the rubric judge's (pairs a
pairwise or per-criterion run decided, with their margin); a ``margin`` column only when
asked for, never null."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from annotation.projects.models import Project
from annotation.prompts.models import PreferenceLabel
from annotation.reviews.models import PairwiseReview, ReviewItem
from scoring.datasets.kinds.base import (
    ExportKind,
    Notes,
    Row,
    _batched,
    messages_type,
    probe_copy,
    versions_field,
)
from scoring.datasets.kinds.prompts import (
    PROMPT_BATCH,
    PromptRubric,
    _in_batch,
    prompt_rubrics,
    responses_of,
)
from scoring.runs.models import Run
from scoring.runs.results import run_results

if TYPE_CHECKING:
    from scoring.datasets.options import ExportOptions


def schema(*, conversational: bool = True, whole_points: bool = True, margins: bool = False) -> Any:
    import pyarrow as pa

    messages = messages_type()
    versions = versions_field()
    text = messages if conversational else pa.string()
    # TRL's collator turns `margin` into a tensor: a null in it is a crash, so it is
    # there only when asked for, and never null.
    margin = [pa.field("margin", pa.float64(), nullable=False)] if margins else []
    return pa.schema(
        [
            ("prompt", text),
            ("chosen", text),
            ("rejected", text),
            ("origin", pa.string()),
            ("also_from", pa.list_(pa.string())),
            *margin,
            ("agreement", pa.float64()),
            ("consistent", pa.bool_()),
            ("prompt_id", pa.string()),
            ("chosen_source", pa.string()),
            ("rejected_source", pa.string()),
            versions,
            ("split", pa.string()),
        ]  # fmt: skip
    )


# When several labels give the same pair (prompt, chosen text, rejected text), one row stands
# for them, from the first origin of this list; the others are named in its `also_from`.
PRECEDENCE = ("expert", "dataset", "judge")
_RANK = {origin: i for i, origin in enumerate(PRECEDENCE)}


@dataclass
class _Pair:
    """One label's pair, before pairs that repeat each other are folded into one row."""

    prompt_id: int
    origin: str
    order: int  # the label's id, or the judge's run id
    chosen: tuple[str, str]  # (source, content)
    rejected: tuple[str, str]
    agreement: float | None = None  # expert labels made by review
    margin: float | None = None  # judge pairs
    consistent: bool | None = None  # pairwise judge pairs


def _pair_row(
    pr: PromptRubric, first: _Pair, group: list[_Pair], options: ExportOptions
) -> dict[str, Any]:
    """The row of a pair that ``group`` (sorted by precedence, ``first`` its head) gave.
    ``origin``, the sources and ``agreement`` are the first label's; ``consistent`` and
    ``margin`` are the judge's (its earliest run's decision with a margin, else its
    earliest) when a judge gave this pair, whichever origin the row is from."""
    judged = [p for p in group if p.origin == "judge"]
    judge = next((p for p in judged if p.margin is not None), judged[0] if judged else None)
    if options.conversational:
        prompt: Any = pr.messages
        good: Any = [{"role": "assistant", "content": first.chosen[1]}]
        bad: Any = [{"role": "assistant", "content": first.rejected[1]}]
    else:
        prompt, good, bad = pr.prompt.last_user_message, first.chosen[1], first.rejected[1]
    origins = {p.origin for p in group}
    row = {"prompt": prompt, "chosen": good, "rejected": bad, "origin": first.origin,
           "also_from": [o for o in PRECEDENCE if o in origins and o != first.origin],
           "agreement": first.agreement if first.origin == "expert" else None,
           "consistent": judge.consistent if judge else None,
           "prompt_id": pr.prompt.external_id, "chosen_source": first.chosen[0],
           "rejected_source": first.rejected[0], "rubric_version_ids": pr.version_ids,
           "split": pr.split}  # fmt: skip
    if options.margins:
        row["margin"] = judge.margin if judge else None
    return row


def _fold(
    pairs: list[_Pair], by_prompt: dict[int, PromptRubric], options: ExportOptions, notes: Notes
) -> list[tuple[_Pair, dict[str, Any]]]:
    """One row per (prompt, chosen text, rejected text), from the label of the first origin
    in ``PRECEDENCE`` (the earliest of that origin); with margins, pairs that no judge gave
    a margin are left out. Counts both in ``notes``."""
    groups: dict[tuple[int, str, str], list[_Pair]] = {}
    for pair in pairs:
        groups.setdefault((pair.prompt_id, pair.chosen[1], pair.rejected[1]), []).append(pair)
    out = []
    for group in groups.values():
        group.sort(key=lambda p: (_RANK[p.origin], p.order))
        first = group[0]
        row = _pair_row(by_prompt[first.prompt_id], first, group, options)
        if options.margins and row["margin"] is None:
            notes.pairs_without_margin += 1
            continue
        notes.pairs_folded += len(group) - 1
        out.append((first, row))
    return out


def _preferences(project: Project, options: ExportOptions, notes: Notes) -> Iterator[Row]:
    sources = set(options.sources)
    decisions: dict[int, list[JudgePair]] | None = None  # the judges' pairs, made once
    for batch in _batched(prompt_rubrics(project, options, need_rubric=False), PROMPT_BATCH):
        by_prompt = {pr.prompt.pk: pr for pr in batch}
        labels = [
            label
            for label in PreferenceLabel.objects.filter(
                _in_batch("prompt_id", batch), source__in=options.origins
            )
            .order_by("pk")
            .values_list("pk", "prompt_id", "source", "chosen_id", "rejected_id")
            if label[1] in by_prompt
        ]
        wanted: list[JudgePair] = []
        if "judge" in options.origins:
            if decisions is None:
                decisions = _judge_pairs(project, options)
            wanted = [p for prompt_id in by_prompt for p in decisions.get(prompt_id, ())]
        texts = responses_of(
            batch,
            {i for label in labels for i in label[3:]}
            | {i for p in wanted for i in (p.chosen, p.rejected)},
        )
        agreement = _expert_agreement(batch) if "expert" in options.origins else {}
        pairs: list[_Pair] = []
        for pk, prompt_id, origin, chosen_id, rejected_id in labels:
            chosen, rejected = texts[chosen_id], texts[rejected_id]
            if sources and not {chosen[0], rejected[0]} <= sources:
                continue
            share = agreement.get(pk) if origin == "expert" else None
            if (
                options.min_agreement is not None
                and origin == "expert"
                and (share or 0) < options.min_agreement
            ):
                continue
            pairs.append(_Pair(prompt_id, origin, pk, chosen, rejected, agreement=share))
        for p in wanted:
            pairs.append(_Pair(p.prompt_id, "judge", p.run, texts[p.chosen], texts[p.rejected],
                               margin=p.margin, consistent=p.consistent))  # fmt: skip
        rows = _fold(pairs, by_prompt, options, notes)
        rows.sort(key=lambda r: (r[0].prompt_id, r[0].origin, r[0].order))
        for first, row in rows:
            yield by_prompt[first.prompt_id].split, row


def _expert_agreement(batch: list[PromptRubric]) -> dict[int, float]:
    """Expert labels made by review: the share of the item's reviewers who chose as the
    final label did (the adjudicated share may be below 1)."""
    items = ReviewItem.objects.filter(_in_batch("prompt_id", batch), label__isnull=False)
    reviews: dict[int, list[str]] = defaultdict(list)
    for item_id, winner in PairwiseReview.objects.filter(item__in=items).values_list(
        "item_id", "winner"
    ):
        reviews[item_id].append(winner)
    out: dict[int, float] = {}
    for item in items.only("pk", "label_id", "final"):
        winners = reviews.get(item.pk, [])
        if winners:
            label_id = item.label_id
            assert label_id is not None  # items with a label only (label__isnull=False)
            share = sum(1 for w in winners if w == item.final) / len(winners)
            out[label_id] = max(out.get(label_id, 0.0), share)
    return out


@dataclass(frozen=True)
class JudgePair:
    prompt_id: int
    run: int
    chosen: int  # response ids
    rejected: int
    margin: float | None
    consistent: bool | None


def _judge_pairs(project: Project, options: ExportOptions) -> dict[int, list[JudgePair]]:
    """Pairs a judge decided, by prompt, run by run: pairwise runs (both orders merged; a
    tie or an inconsistent pair is no preference) and per-criterion runs (the rubric score
    margin between two responses of a prompt, at least ``min_margin``)."""

    sources = set(options.sources)
    out: dict[int, list[JudgePair]] = defaultdict(list)
    runs = Run.objects.without_probes().filter(project=project, status=Run.Status.DONE)
    runs = runs.order_by("pk")
    for run in runs.filter(mode=Run.Mode.PAIRWISE):
        for pair in run_results(run).pairs:
            if pair.failed or pair.sample or pair.winner == "tie":
                continue
            if options.consistent_only and not pair.consistent:
                continue
            chosen, rejected = (pair.a, pair.b) if pair.winner == "a" else (pair.b, pair.a)
            if sources and not {chosen.source, rejected.source} <= sources:
                continue
            if probe_copy(chosen.source, sources) or probe_copy(rejected.source, sources):
                continue
            margin = None if pair.probability is None else abs(2 * pair.probability - 1)
            out[pair.a.prompt_id].append(
                JudgePair(pair.a.prompt_id, run.pk, chosen.pk, rejected.pk, margin, pair.consistent)
            )
    for run in runs.filter(mode=Run.Mode.PER_CRITERION):
        scored: dict[int, list[tuple[float, int]]] = defaultdict(list)
        for result in run_results(run).responses:
            response = result.response
            if result.sample or result.score is None:
                continue
            if (sources and response.source not in sources) or probe_copy(response.source, sources):
                continue
            scored[response.prompt_id].append((result.score, response.pk))
        for prompt_id, group in scored.items():
            group.sort(key=lambda x: (-x[0], x[1]))
            for i, (high, chosen_id) in enumerate(group):
                for low, rejected_id in group[i + 1 :]:
                    margin = high - low
                    if margin > 0 and margin >= options.min_margin:
                        out[prompt_id].append(
                            JudgePair(
                                prompt_id, run.pk, chosen_id, rejected_id, round(margin, 6), None
                            )  # fmt: skip
                        )
    return out


def _count(project: Project, options: ExportOptions) -> int:
    return PreferenceLabel.objects.filter(prompt__project=project).count()


def _notes(
    *, margins: bool, pairs_folded: int, pairs_without_margin: int, **facts: Any
) -> list[str]:
    """How pairs were made one per pair, and how TRL uses ``margin``."""
    notes = []
    notes.append(
        "One row per (prompt, chosen text, rejected text). When several labels gave the "
        "same pair, the row is the expert's label, else the dataset's, else the rubric "
        "judge's, and `also_from` names the other origins that gave it; "
        f"{pairs_folded:,} repeated pair{'s' if pairs_folded != 1 else ''} "
        f"{'were' if pairs_folded != 1 else 'was'} folded into another row this way. "
        "Opposite labels of the same two responses are different pairs and both stay."
    )
    loss = (
        "TRL's `RewardTrainer` uses a `margin` column when the dataset has one: its loss "
        "becomes −log σ(r_chosen − r_rejected − margin), so the reward model is pushed to "
        "separate each pair by at least its margin, in reward units (a different "
        "objective from the plain Bradley-Terry loss); a null margin crashes its "
        "collator. `DPOTrainer` does not read it."
    )
    if margins:
        notes.append(
            "`margin` is the rubric judge's margin for the pair (per-criterion runs: the "
            "difference of the two responses' rubric scores; pairwise runs: |2p − 1| of "
            "the judge's probability), also on rows whose label came from an expert or "
            "the dataset when the judge gave the same pair. It is never null: "
            f"{pairs_without_margin:,} pair{'s' if pairs_without_margin != 1 else ''} "
            "without a judge margin "
            f"{'were' if pairs_without_margin != 1 else 'was'} left out. " + loss
        )
    else:
        notes.append(
            "There is no `margin` column (export with margins to get the rubric judge's "
            "margins). " + loss
        )
    notes.append(
        "`agreement`: for expert labels made by review, the share of reviewers who "
        "chose as the final label did. `consistent`: whether the pairwise judge "
        "decided the same in both presentation orders (null where no pairwise judge "
        "gave the pair)."
    )
    return notes


DESCRIPTION = (
    "Preference pairs for reward models and DPO, in the columns TRL expects: `prompt`, "
    "`chosen`, `rejected`, one row per pair, with where its label came from (`origin`: "
    "the dataset, expert review or the rubric judge; `also_from`: the other origins that "
    "gave the same pair), the reviewers' `agreement` and the judge's position "
    "consistency (`consistent`)."
)

KIND = ExportKind(
    "preferences",
    label="Preference pairs (TRL: prompt, chosen, rejected)",
    description=DESCRIPTION,
    empty_hint=(
        "no preference pair matched these options (label origins, sources, "
        "agreement and margin filters)."
    ),
    schema=schema,
    rows=_preferences,
    count=_count,
    notes=_notes,
)
