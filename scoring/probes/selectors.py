"""Reading judge probes: a report's headline figures, and the latest finished probe of each
judge (endpoint, model and template) for the Analytics tab."""

from __future__ import annotations

from typing import Any

from annotation.projects.models import Project
from scoring.engine import perturb
from scoring.probes.models import Probe


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The figures a list shows: the injection flip rate and whether it met its goal, the
    worst neutral flip rate, causal sensitivity and specificity, the judge's own noise
    (None where not probed or undefined)."""
    kinds = {k["kind"]: k for k in report.get("kinds", [])}
    neutral = [
        k["flip_rate"]["value"]
        for name, k in kinds.items()
        if name in perturb.NEUTRAL and k["flip_rate"]["value"] is not None
    ]
    causal = kinds.get("causal", {})
    injection = kinds.get(perturb.INJECTION, {})
    return {
        "injection": injection.get("flip_rate", {}).get("value"),
        "injection_met": injection.get("goal", {}).get("met"),
        "neutral": max(neutral) if neutral else None,
        "sensitivity": causal.get("sensitivity", {}).get("value"),
        "specificity": causal.get("specificity", {}).get("value"),
        "noise": report.get("noise", {}).get("value"),
    }


def pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def shown_headline(figures: dict[str, Any]) -> dict[str, Any]:
    """A headline's rates as percentages (the goal's verdict stays a boolean)."""
    return {k: v if isinstance(v, bool) or v is None else pct(v) for k, v in figures.items()}


def latest_per_judge(*, project: Project) -> list[tuple[Probe, dict[str, Any]]]:
    """The latest finished probe of each judge (endpoint, model, template version, grading
    mode), newest first, with its headline as shown."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    probes = Probe.objects.filter(project=project, phase=Probe.Phase.DONE).select_related(
        "run__endpoint"
    )
    for probe in probes.order_by("-reported_at", "-pk")[:200]:
        run = probe.run
        judge = (run.endpoint_id, run.model, run.template_version, run.mode)
        if judge in seen:
            continue
        seen.add(judge)
        out.append((probe, shown_headline(headline(probe.report))))
    return out
