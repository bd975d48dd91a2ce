"""The Analytics tab: a finished run's stored figures (viewers and up), its tables as CSV,
asking a worker to compute them again, and sending flagged criteria to Critique (editors and
owners). Pages only read what the worker stored."""

from __future__ import annotations

import csv
import io
from collections import Counter
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from annotation.forms import cleaned
from annotation.http import SignedInRequest
from annotation.projects import selectors as project_selectors
from annotation.projects.models import Project, Role
from annotation.projects.selectors import ProjectAccess
from annotation.rubrics.models import Rubric
from annotation.spreadsheets import csv_cell
from scoring.insights import services as insights_services
from scoring.insights.forms import AnalyticsChoiceForm, CritiqueForm
from scoring.insights.models import RunInsights
from scoring.probes import selectors as probe_selectors
from scoring.runs import selectors as run_selectors
from scoring.runs.models import Run


def _access(request: SignedInRequest, slug: str, role: Role = Role.VIEWER) -> ProjectAccess:
    return project_selectors.project_get_for_user(user=request.user, slug=slug, min_role=role)


def _finished_runs(project: Project) -> list[Run]:
    return list(
        Run.objects.without_probes()
        .filter(project=project, status__in=[Run.Status.DONE, Run.Status.FAILED])
        .select_related("endpoint")
        .order_by("-finished_at", "-pk")[:50]
    )


@login_required
@require_GET
def analytics_page(request: SignedInRequest, slug: str) -> HttpResponse:
    access = _access(request, slug)
    project = access.project
    runs = _finished_runs(project)
    choice = AnalyticsChoiceForm(request.GET)
    run_id = choice.cleaned_data["run"] if choice.is_valid() else None
    if run_id is not None:
        run: Run | None = run_selectors.run_get(project=project, run_id=run_id)
    else:  # the latest per-criterion run, else the latest run
        run = next((r for r in runs if r.mode != Run.Mode.PAIRWISE), runs[0] if runs else None)
    insights = insights_services.insights_of(run=run) if run else None
    figures = insights.figures if insights else {}
    places = insights_services.criterion_places(figures) if figures else {}
    criteria = figures.get("criteria", [])
    rubric_id = choice.cleaned_data.get("rubric") if choice.is_valid() else None
    rubric = Rubric.objects.filter(project=project, pk=rubric_id).first() if rubric_id else None
    if rubric_id and rubric is None:
        raise Http404("No such rubric in this project.")
    if rubric is not None:  # one rubric's criteria, from its editor
        criteria = [
            c for c in criteria if (place := places.get(c["key"])) and place.rubric_id == rubric.pk
        ]
    for c in criteria:
        place = places.get(c["key"])
        c["editor"] = (
            reverse("annotation:rubric_page", args=[project.slug, place.rubric_id])
            + f"#c-{c['key']}"
            if place
            else ""
        )
        c["prompt_scoped"] = bool(place and place.prompt_id)
    sources = sorted({s for c in criteria for s in c["by_source"]})
    for c in criteria:
        c["source_rates"] = [c["by_source"].get(s) for s in sources]
    means = figures.get("mean_scores", {})
    for board in figures.get("leaderboard", {}).values():
        for b in (board or {}).get("board", []):
            b["mean"] = means.get(b["source"])
    tail = figures.get("tail") or {}
    tail_rows = [
        (label, tail[key])
        for label, key in (("All pairs", "all"), ("Top 50 %", "0.50"), ("Top 25 %", "0.25"), ("Top 10 %", "0.10"))
        if key in tail
    ]  # fmt: skip
    context = {
        "project": project,
        "access": access,
        "runs": runs,
        "run": run,
        "rubric": rubric,
        "insights": insights,
        "figures": figures,
        "criteria": criteria,
        "flagged": [c for c in criteria if c["flags"]],
        "flag_groups": _flag_groups(project, criteria, places),
        "flag_kinds": _flag_kinds(criteria),
        "sources": sources,
        "tail_rows": tail_rows,
        "can_edit": access.can_edit,
        "charts": _charts(figures) if figures else None,
        "probes": probe_selectors.latest_per_judge(project=project),
    }
    return render(request, "scoring/analytics.html", context)


KIND_NAMES = {
    "saturated": "saturated",
    "reversed": "against the rest of the rubric",
    "no_signal": "no signal",
    "inconsistent": "inconsistent with the labels",
    "noisy": "noisy",
    "redundant": "redundant",
}


def _flag_kinds(criteria: list[dict[str, Any]]) -> list[tuple[str, int]]:
    counts = Counter(f["kind"] for c in criteria for f in c["flags"])
    return [(KIND_NAMES.get(kind, kind), n) for kind, n in counts.most_common()]


def _flag_groups(
    project: Project, criteria: list[dict[str, Any]], places: dict[str, Any]
) -> list[dict[str, Any]]:
    """The flagged criteria by rubric (what Critique and the editor work on), the rubrics
    with the most flags first."""
    groups: dict[int | None, dict[str, Any]] = {}
    for c in criteria:
        if not c["flags"]:
            continue
        place = places.get(c["key"])
        rubric_id = place.rubric_id if place else None
        group = groups.setdefault(
            rubric_id, {"rubric_id": rubric_id, "criteria": [], "kinds": Counter()}
        )
        group["criteria"].append(c)
        group["kinds"].update(f["kind"] for f in c["flags"])
        group["prompt_scoped"] = bool(place and place.prompt_id)
    rubrics = Rubric.objects.filter(
        project=project, pk__in=[g for g in groups if g]
    ).select_related("prompt")
    titles = {r.pk: r.title for r in rubrics}
    asked = {r.pk: r.prompt.last_user_message if r.prompt else "" for r in rubrics}
    out = []
    for rubric_id, group in groups.items():
        group["title"] = titles.get(rubric_id, "A rubric no longer in the project") if rubric_id else "Unknown rubric"  # fmt: skip
        group["asked"] = asked.get(rubric_id, "") if rubric_id else ""
        group["editor"] = reverse("annotation:rubric_page", args=[project.slug, rubric_id]) if rubric_id in titles else ""  # fmt: skip
        group["summary"] = ", ".join(
            f"{n} {KIND_NAMES.get(k, k)}" for k, n in group["kinds"].most_common()
        )
        group["key"] = group["criteria"][0]["key"]
        out.append(group)
    return sorted(out, key=lambda g: (-len(g["criteria"]), g["title"]))


def _charts(figures: dict[str, Any]) -> dict[str, Any]:
    """What the page's charts plot: hit rates per source, the leaderboard with its
    intervals, and score against length."""
    criteria = figures.get("criteria", [])[:40]
    sources = sorted({s for c in criteria for s in c["by_source"]})
    boards = figures.get("leaderboard", {})
    board = (boards.get("pairwise") or boards.get("labels") or {}).get("board", [])
    return {
        "hit": {
            "labels": [c["text"][:40] for c in criteria],
            "sources": [
                {"source": s, "rates": [c["by_source"].get(s, {}).get("value") for c in criteria]}
                for s in sources
            ],
        },
        "board": [
            {"source": b["source"], "theta": b["theta"], "low": b["low"], "high": b["high"]}
            for b in board
        ],  # fmt: skip
        "scatter": figures.get("bias", {}).get("scatter", []),
    }


@login_required
@require_POST
def analytics_compute(request: SignedInRequest, slug: str, run_id: int) -> HttpResponse:
    project = _access(request, slug, Role.EDITOR).project
    run = run_selectors.run_get(project=project, run_id=run_id)
    if not run.finished:
        messages.error(request, "The analytics are computed once the run has finished.")
    else:
        insights_services.insights_request(run=run)
        messages.success(request, "A worker is computing this run's analytics; reload in a moment.")
    return redirect(reverse("scoring:analytics", args=[slug]) + f"?run={run.pk}")


@login_required
@require_POST
def analytics_critique(request: SignedInRequest, slug: str, run_id: int) -> HttpResponse:
    project = _access(request, slug, Role.EDITOR).project
    run = run_selectors.run_get(project=project, run_id=run_id)
    key = cleaned(CritiqueForm, request.POST)["key"]
    job = insights_services.critique_send(run=run, key=key, actor=request.user)
    messages.success(
        request,
        "Sent to Critique: its proposal appears in the prompt's co-author panel, with these "
        "figures in its notes; nothing changes until someone accepts it.",
    )
    if job.prompt_id is None:  # critique_send always names a prompt; kept for the type
        return redirect(reverse("scoring:analytics", args=[slug]) + f"?run={run.pk}")
    return redirect("annotation:prompt_detail", slug=slug, prompt_id=job.prompt_id)


TABLES = ("criteria", "redundant", "leaderboard", "summary")


@login_required
@require_GET
def analytics_csv(request: SignedInRequest, slug: str, run_id: int, table: str) -> HttpResponse:
    project = _access(request, slug).project
    run = run_selectors.run_get(project=project, run_id=run_id)
    insights = RunInsights.objects.filter(run=run).first()
    if table not in TABLES or insights is None or not insights.figures:
        raise Http404("No such table for this run.")
    out = io.StringIO()
    writer = csv.writer(out)
    for row in _rows(insights.figures, table):
        writer.writerow([csv_cell(v) for v in row])
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="{project.slug}-run-{run.pk}-{table}.csv"'
    )
    return response


def _rows(figures: dict[str, Any], table: str) -> list[list[Any]]:
    if table == "criteria":
        sources = sorted({s for c in figures["criteria"] for s in c["by_source"]})
        rows: list[list[Any]] = [[
            "key", "text", "points", "hit_rate", "responses", *[f"hit_rate:{s}" for s in sources],
            "saturated", "point_biserial", "label_agreement", "informative_pairs", "flip_rate",
            "kappa", "judges_flip_rate", "judges_kappa", "flags",
        ]]  # fmt: skip
        for c in figures["criteria"]:
            rows.append([
                c["key"], c["text"], c["points"], c["hit_rate"]["value"], c["hit_rate"]["n"],
                *[c["by_source"].get(s, {}).get("value") for s in sources], c["saturated"],
                c["discrimination"]["value"], c["label_agreement"]["value"], c["label_agreement"]["n"],
                c["noise"]["flips"]["value"], c["noise"]["kappa"]["value"],
                c["noise"].get("judges_flips", {}).get("value"), c["noise"].get("judges_kappa", {}).get("value"),
                "; ".join(f["kind"] for f in c["flags"]),
            ])  # fmt: skip
        return rows
    if table == "redundant":
        rows = [["a", "a_text", "b", "b_text", "agreement", "phi", "responses", "text_cosine"]]
        for p in figures["redundant"]:
            rows.append([p["a"], p["a_text"], p["b"], p["b_text"], p["agreement"], p["phi"]["value"], p["n"], p.get("cosine", {}).get("value")])  # fmt: skip
        return rows
    if table == "summary":  # the rubric's and the judge's figures, one per row
        rows = [["figure", "value", "n", "why"]]
        snr = figures.get("snr") or {}
        named = [(f"snr:{k}", snr.get(k)) for k in ("signal", "noise", "snr")]
        named += [(f"tail_accuracy:{k}", v) for k, v in (figures.get("tail") or {}).items()]
        bias = figures.get("bias") or {}
        named += [
            (f"bias:{k}", bias.get(k))
            for k in ("length_score", "longer_wins_judge", "longer_wins_labels")
        ]
        position = bias.get("position") or {}
        named += [(f"bias:position_{k}", position.get(k)) for k in ("consistent", "first_shown")]
        for name, figure in named:
            if figure:
                rows.append([name, figure["value"], figure["n"], figure["why"]])
        return rows
    rows = [["from", "source", "theta", "low", "high", "comparisons", "mean_score"]]
    means = figures.get("mean_scores", {})
    for name, board in figures.get("leaderboard", {}).items():
        for b in (board or {}).get("board", []):
            rows.append([name, b["source"], b["theta"], b["low"], b["high"], b["comparisons"], means.get(b["source"])])  # fmt: skip
    return rows
