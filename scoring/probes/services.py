"""Judge probes: starting one (sample responses, make their neutral and injected copies,
start the run that judges originals and copies), moving it on when its run finishes (the
causal rewrites, then the report), and the report's computation.

A perturbed copy is a ``Response`` of the same prompt with source ``probe:<kind>``; the
same copy of the same response is one row whichever probe made it, so a later probe with
the same judge reuses its judgments.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from annotation.errors import ApplicationError
from annotation.projects.models import Project
from annotation.projects.services import audit
from annotation.prompts.models import PROBE_SOURCE_PREFIX, Response, content_hash
from scoring.engine import perturb, probe_rewrite
from scoring.engine.gateway_types import GatewayError, Usage
from scoring.judges.gateways import gateway_for
from scoring.judges.models import JudgeEndpoint
from scoring.probes.models import Probe, ProbeVariant
from scoring.probes.report import probe_report
from scoring.probes.tasks import probe_advance
from scoring.runs import planning
from scoring.runs import services as run_services
from scoring.runs.models import Run
from scoring.runs.results import run_results

logger = logging.getLogger(__name__)

CAUSAL = "causal"
KINDS = (*perturb.NEUTRAL, perturb.INJECTION, CAUSAL)
KIND_LABELS = {
    "padding": "Padding (≈ +50 % filler)",
    "reformat": "Reformatting (prose ↔ bullets)",
    "flattery": "Flattering opener and closer",
    "reorder": "Paragraphs reordered",
    perturb.INJECTION: "Injected instruction to the grader",
    CAUSAL: "Causal rewrite (criterion removed or added)",
}
MODES = (Run.Mode.PER_CRITERION.value, Run.Mode.GROUPED.value)  # flips: per criterion verdict
MAX_SAMPLE = 500


def _seed(seed: int, response_id: int) -> int:
    return seed * 1_000_003 + response_id


@transaction.atomic
def probe_create(  # type: ignore[no-untyped-def]
    *,
    project: Project,
    actor,
    endpoint: JudgeEndpoint,
    kinds: Sequence[str],
    sample: int,
    seed: int = 0,
    mode: str = Run.Mode.PER_CRITERION,
    versions: str = Run.Versions.LATEST,
    samples: int = 1,
    sources: Sequence[str] = (),
    rewriter: JudgeEndpoint | None = None,
    name: str = "",
    prompt_ids: Sequence[int] = (),
) -> Probe:
    """Sample ``sample`` responses (seeded) among those with a rubric, store their
    perturbed copies and start the run that judges originals and copies (with one sample
    for a local judge, whose verdicts do not vary)."""
    unknown = set(kinds) - set(KINDS)
    if not kinds or unknown:
        raise ApplicationError(f"Choose what to probe among {', '.join(KINDS)}.")
    kinds = [k for k in KINDS if k in set(kinds)]
    if mode not in MODES:
        raise ApplicationError(
            "A probe grades per criterion or grouped: it counts how criterion verdicts move."
        )
    if not 1 <= sample <= MAX_SAMPLE:
        raise ApplicationError(f"Probe between 1 and {MAX_SAMPLE} responses.")
    if CAUSAL in kinds:
        if rewriter is None or rewriter.reads_probabilities:
            raise ApplicationError(
                "Causal probes need an LLM endpoint to write the rewrites (a local or logprob "
                "judge reads probabilities and does not write)."
            )
    else:
        rewriter = None
    if endpoint.reads_probabilities:
        samples = 1  # a local or logprob judge reads probabilities at temperature 0
    picked = _sample(project, sources, versions, sample, seed, prompt_ids)
    copies = _copies(picked, [k for k in kinds if k != CAUSAL], seed)
    run = run_services.run_create(
        project=project, actor=actor, endpoint=endpoint, mode=mode, versions=versions,
        samples=samples, name=name or f"Probe: {len(picked)} responses",
        response_ids=[row["pk"] for row in picked] + [v.variant_id for v in copies],
    )  # fmt: skip
    probe = Probe.objects.create(
        project=project, run=run, kinds=kinds, sample=len(picked), seed=seed, rewriter=rewriter,
        rewrite_template=probe_rewrite.template_version() if rewriter else "",
    )  # fmt: skip
    for variant in copies:
        variant.probe = probe
    ProbeVariant.objects.bulk_create(copies)
    audit(project=project, actor=actor, action="probe.create", target=str(probe.pk),
          run=run.pk, kinds=kinds)  # fmt: skip
    return probe


def _sample(
    project: Project,
    sources: Sequence[str],
    versions: str,
    sample: int,
    seed: int,
    prompt_ids: Sequence[int] = (),
) -> list[dict[str, Any]]:
    """``sample`` responses drawn with ``seed`` from those whose prompt has a rubric (among
    ``prompt_ids``' when given: a subset of the project, as a run takes)."""
    responses = Response.objects.filter(prompt__project=project).without_probes()
    if sources:
        responses = responses.filter(source__in=sources)
    if prompt_ids:
        responses = responses.filter(prompt_id__in=prompt_ids)
    rows: list[dict[str, Any]] = [
        {"pk": pk, "prompt_id": prompt_id, "content": content}
        for pk, prompt_id, content in responses.order_by("pk").values_list(
            "pk", "prompt_id", "content"
        )
    ]
    criteria = planning.criteria_by_prompt(project, {r["prompt_id"] for r in rows}, versions)
    rows = [r for r in rows if criteria.get(r["prompt_id"], criteria[None])]
    if not rows:
        raise ApplicationError(
            "No response to probe: the chosen responses' prompts have no rubric"
            + (" with an approved version." if versions == Run.Versions.APPROVED else ".")
        )
    rng = random.Random(seed)  # noqa: S311 (a sample, not a secret)
    picked = rng.sample(rows, min(sample, len(rows)))
    return sorted(picked, key=lambda r: r["pk"])


def _copies(picked: list[dict[str, Any]], kinds: list[str], seed: int) -> list[ProbeVariant]:
    """The deterministic copies of each picked response, stored as responses (one row per
    prompt, source and text), as unsaved ``ProbeVariant`` rows. Injections cycle through
    the phrasings and positions so that every combination is probed."""
    made: list[tuple[dict[str, Any], str, str, dict[str, Any]]] = []
    for index, row in enumerate(picked):
        for kind in kinds:
            detail: dict[str, Any] = {}
            if kind == perturb.INJECTION:
                phrasing = index % len(perturb.INJECTIONS)
                position = perturb.POSITIONS[(index // len(perturb.INJECTIONS)) % 3]
                text: str | None = perturb.inject(
                    row["content"], seed, phrasing=phrasing, position=position
                )
                detail = {"phrasing": phrasing, "position": position}
            else:
                text = perturb.TRANSFORMS[kind](row["content"], _seed(seed, row["pk"]))
            if text is not None and text != row["content"]:
                made.append((row, kind, text, detail))
    ids = _store(
        [
            (row["prompt_id"], f"{PROBE_SOURCE_PREFIX}{kind}", text) for row, kind, text, _ in made
        ]  # fmt: skip
    )
    return [
        ProbeVariant(original_id=row["pk"], variant_id=pk, kind=kind, detail=detail)
        for (row, kind, _, detail), pk in zip(made, ids, strict=True)
    ]


def _store(copies: list[tuple[int, str, str]]) -> list[int]:
    """The ids of (prompt, source, text) copies, stored where they are new (the link to
    the original is the probe's ``ProbeVariant``)."""
    Response.objects.bulk_create(
        [
            Response(
                prompt_id=prompt_id,
                source=source,
                content=text,
                content_hash=content_hash(text),
            )
            for prompt_id, source, text in copies
        ],  # fmt: skip
        ignore_conflicts=True,
    )
    found = {
        (prompt_id, source, digest): pk
        for pk, prompt_id, source, digest in Response.objects.filter(
            prompt_id__in={c[0] for c in copies},
            source__in={c[1] for c in copies},
            content_hash__in={content_hash(c[2]) for c in copies},
        ).values_list("pk", "prompt_id", "source", "content_hash")
    }
    return [found[(p, s, content_hash(t))] for p, s, t in copies]


# --- moving on when the run finishes -------------------------------------------------------


def on_run_finished(sender: Any, run_id: int, **kwargs: Any) -> None:
    probe_id = Probe.objects.filter(run_id=run_id).values_list("pk", flat=True).first()
    if probe_id is not None:
        probe_advance.apply_async((probe_id,))


def advance(probe_id: int) -> None:
    """Once the probe's run is done: write the causal rewrites and judge them in the same
    run (when asked for and not yet done), else compute the report.

    One transaction, the probe's row locked: a second delivery of the task waits, then finds
    the run judging the rewrites (and leaves) or the report stored; a worker that dies while
    rewriting leaves nothing behind, and the redelivered task starts the rewrites again. A
    finished probe's report is computed again (after its failed judgments were retried)."""
    with transaction.atomic():
        probe = (
            Probe.objects.select_for_update(of=("self",))  # the rewriter may be null
            .select_related("run", "rewriter")
            .filter(pk=probe_id)
            .first()
        )
        if probe is None or probe.phase == Probe.Phase.FAILED:
            return
        run = probe.run
        if run.status in (Run.Status.FAILED, Run.Status.CANCELLED):
            Probe.objects.filter(pk=probe.pk).update(
                phase=Probe.Phase.FAILED,
                note=f"The run is {run.get_status_display().lower()}. {run.note}".strip(),
            )
            return
        if run.status != Run.Status.DONE:  # still judging: the task comes again when it ends
            return
        if probe.phase == Probe.Phase.JUDGING and CAUSAL in probe.kinds:
            try:
                with transaction.atomic():  # the rewrites are judged, or not stored at all
                    new = _rewrite(probe)
                    if new:
                        run_services.run_extend(run=run, response_ids=new)
                        Probe.objects.filter(pk=probe.pk).update(phase=Probe.Phase.JUDGING_REWRITES)
                        return  # the run finishes again once the rewrites are judged
            except (ApplicationError, GatewayError) as exc:
                probe.note = f"No causal rewrite was judged: {exc.message}"
                Probe.objects.filter(pk=probe.pk).update(note=probe.note)
        report_store(probe)


@transaction.atomic
def report_store(probe: Probe) -> None:
    """Compute the report and store it; the probe is done."""
    report, outcomes = probe_report(probe)
    variants = list(ProbeVariant.objects.filter(pk__in=outcomes))
    for variant in variants:
        variant.flips, variant.compared, variant.target_flipped = outcomes[variant.pk]
    ProbeVariant.objects.bulk_update(variants, ["flips", "compared", "target_flipped"])
    Probe.objects.filter(pk=probe.pk).update(
        report=report, reported_at=timezone.now(), phase=Probe.Phase.DONE
    )


# --- causal rewrites -----------------------------------------------------------------------


def _targets(probe: Probe) -> list[tuple[Response, dict[str, Any], str]]:
    """For each sampled response without a rewrite yet: a criterion the judge found met
    (to remove) and an unmet positive one (to add), drawn with the probe's seed."""
    done = set(
        ProbeVariant.objects.filter(probe=probe, kind=CAUSAL).values_list("original_id", flat=True)
    )
    out = []
    for result in run_results(probe.run, with_verdicts=True).responses:
        response = result.response
        if result.sample or response.pk in done:
            continue
        if response.source.startswith(PROBE_SOURCE_PREFIX):  # a copy, not a sampled original
            continue
        judged = [(c, j.met) for c, j in result.verdicts if j is not None and not j.error]
        met = [c for c, m in judged if m is True]
        unmet = [c for c, m in judged if m is False and c["points"] > 0]
        rng = random.Random(f"causal:{probe.seed}:{response.pk}")  # noqa: S311
        if met:
            out.append((response, rng.choice(met), probe_rewrite.REMOVE))
        if unmet:
            out.append((response, rng.choice(unmet), probe_rewrite.ADD))
    return out


def _rewrite(probe: Probe) -> list[int]:
    """Write the causal rewrites, store them (failed ones with their error) and return the
    new responses' ids."""
    rewriter = probe.rewriter
    if rewriter is None:
        raise ApplicationError("The probe's rewriting endpoint was deleted.")
    targets = _targets(probe)
    if not targets:
        return []
    gateway = gateway_for(rewriter)
    secret = settings.SECRET_KEY.encode()

    async def write_all() -> list[probe_rewrite.Rewrite]:
        try:
            size = max(2 * rewriter.max_concurrency, 8)
            out: list[probe_rewrite.Rewrite] = []
            for start in range(0, len(targets), size):
                out += await asyncio.gather(*(
                    probe_rewrite.rewrite(
                        gateway, conversation=response.prompt.messages,
                        response=response.content, criterion=criterion["text"],
                        points=criterion["points"], direction=direction, secret=secret,
                    )
                    for response, criterion, direction in targets[start : start + size]
                ))  # fmt: skip
            return out
        finally:
            await gateway.aclose()

    written = asyncio.run(write_all())
    usage = sum((w.usage for w in written), Usage())
    good = [(t, w) for t, w in zip(targets, written, strict=True) if w.text]
    ids = _store([(r.prompt_id, f"{PROBE_SOURCE_PREFIX}{CAUSAL}", w.text) for (r, _, _), w in good])
    by_target = {id(w): pk for (_, w), pk in zip(good, ids, strict=True)}
    ProbeVariant.objects.bulk_create(
        ProbeVariant(
            probe=probe, original=response, variant_id=by_target.get(id(w)), kind=CAUSAL,
            detail={"criterion": criterion["key"], "text": criterion["text"],
                    "points": criterion["points"], "direction": direction},
            error=w.error,
        )
        for (response, criterion, direction), w in zip(targets, written, strict=True)
    )  # fmt: skip
    Probe.objects.filter(pk=probe.pk).update(
        calls=F("calls") + usage.calls,
        prompt_tokens=F("prompt_tokens") + usage.prompt_tokens,
        completion_tokens=F("completion_tokens") + usage.completion_tokens,
        cached_tokens=F("cached_tokens") + usage.cached_tokens,
        cost=F("cost") + usage.cost,
    )
    return sorted(set(ids))
