"""Judge probe pages: the list with the form that starts a probe (editors and owners), a
probe's page with its run's progress and its report (viewers and up), and the report as
CSV. Pages only read what the worker stored."""

from __future__ import annotations

import csv
import io
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from annotation.errors import ApplicationError
from annotation.forms import error_text
from annotation.http import SignedInRequest
from annotation.projects import selectors as project_selectors
from annotation.projects.models import Project, Role
from annotation.projects.selectors import ProjectAccess
from annotation.prompts import selectors as prompt_selectors
from annotation.prompts.models import Response
from annotation.spreadsheets import csv_cell
from scoring.coauthoring import services as coauthor_services
from scoring.judges import selectors as judge_selectors
from scoring.probes import services as probe_services
from scoring.probes.diff import word_diff
from scoring.probes.forms import ProbeForm
from scoring.probes.models import Probe
from scoring.probes.selectors import headline, pct, shown_headline
from scoring.probes.services import KIND_LABELS, MODES
from scoring.runs.models import Run
from scoring.runs.subsets import subset_prompt_ids


def _access(request: SignedInRequest, slug: str, role: Role = Role.VIEWER) -> ProjectAccess:
    return project_selectors.project_get_for_user(user=request.user, slug=slug, min_role=role)


def probe_get(*, project: Project, probe_id: int) -> Probe:
    probe = Probe.objects.select_related("run__endpoint", "rewriter").filter(
        project=project, pk=probe_id
    )
    found = probe.first()
    if found is None:
        raise Http404("No such probe.")
    return found


@login_required
@require_http_methods(["GET", "POST"])
def probes_page(request: SignedInRequest, slug: str) -> HttpResponse:
    access = _access(request, slug)
    project = access.project
    error = ""
    if request.method == "POST":
        access.require(Role.EDITOR)
        try:
            form = ProbeForm(request.POST)
            if not form.is_valid():
                raise ApplicationError(error_text(form))
            options = form.probe_options()
            endpoint = coauthor_services.endpoint_for(
                project, form.cleaned_data["endpoint"], generating=False
            )
            rewriter = None
            if probe_services.CAUSAL in options["kinds"]:
                rewriter = coauthor_services.endpoint_for(
                    project, form.cleaned_data["rewriter"], generating=True
                )
            prompt_ids = subset_prompt_ids(project=project, subset=form.subset())
            probe = probe_services.probe_create(
                project=project, actor=request.user, endpoint=endpoint, rewriter=rewriter,
                prompt_ids=prompt_ids, **options,
            )  # fmt: skip
            return redirect("scoring:probe", slug=slug, probe_id=probe.pk)
        except ApplicationError as exc:  # shown in the form, which keeps what was typed
            error = exc.message
    probes = list(
        Probe.objects.filter(project=project).select_related("run__endpoint").order_by("-pk")[:50]
    )
    context = {
        "project": project,
        "access": access,
        "can_run": access.can_edit,
        "probes": [(p, shown_headline(headline(p.report))) for p in probes],
        "endpoints": judge_selectors.endpoints_of(project=project),
        "sources": prompt_selectors.response_sources(project=project),
        "modes": [(m, Run.Mode(m).label) for m in MODES],
        "version_policies": Run.Versions.choices,
        "kind_labels": list(KIND_LABELS.items()),
        "error": error,
        "post": request.POST,
        "chosen": request.POST.getlist("kinds") if request.method == "POST" else list(KIND_LABELS),
        "chosen_sources": request.POST.getlist("sources"),
    }
    return render(request, "scoring/probes.html", context)


@login_required
@require_GET
def probe_page(request: SignedInRequest, slug: str, probe_id: int) -> HttpResponse:
    access = _access(request, slug)
    probe = probe_get(project=access.project, probe_id=probe_id)
    context: dict[str, Any] = {"project": access.project, "access": access, "probe": probe,
                               "run": probe.run, "labels": KIND_LABELS}  # fmt: skip
    if request.htmx and request.GET.get("part") == "progress":
        response = render(request, "scoring/probe.html#probe-progress", context)
        if probe.phase in (Probe.Phase.DONE, Probe.Phase.FAILED):
            response["HX-Refresh"] = "true"
        return response
    context["kinds"] = _with_examples(probe.report.get("kinds", []))
    context["noise"] = _interval(probe.report.get("noise", {}), percent=True)
    context["order_swap"] = _order_swap(probe.report.get("order_swap"))
    return render(request, "scoring/probe.html", context)


def _with_examples(kinds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The report's kinds, their worst examples with both texts as a word diff."""
    ids = {w[side] for k in kinds for w in k.get("worst", []) for side in ("original", "variant")}
    texts = dict(Response.objects.filter(pk__in=ids).values_list("pk", "content"))
    out = []
    for kind in kinds:
        worst = []
        for example in kind.get("worst", []):
            left, right = word_diff(
                texts.get(example["original"], ""),
                texts.get(example["variant"], ""),
                context=CONTEXT,
            )
            moved = [
                c for c in example["criteria"]
                if c["before"] != c["after"] or c["key"] == example["target"]
            ]  # fmt: skip
            kept = [c for c in example["criteria"] if c not in moved]
            worst.append({**example, "left": left, "right": right, "moved": moved, "kept": kept})
        out.append({**kind, "label": KIND_LABELS.get(kind["kind"], kind["kind"]), "worst": worst,
                    "shown": _shown(kind)})  # fmt: skip
    return out


def _interval(figure: dict[str, Any], *, percent: bool) -> str:
    """ "3.2 % (1.1–5.0 %)", "+0.041 (0.010 to 0.072)", or "—" and why."""
    if figure.get("value") is None:
        return f"— ({figure.get('why') or 'undefined'})"
    if percent:
        text = pct(figure["value"])
        if figure.get("low") is not None:
            text += f" ({100 * figure['low']:.1f}–{100 * figure['high']:.1f} %)"
        return text
    text = f"{figure['value']:+.3f}"
    if figure.get("low") is not None:
        text += f" ({figure['low']:+.3f} to {figure['high']:+.3f})"
    return text


def _order_swap(figure: dict[str, Any] | None) -> dict[str, Any] | None:
    """The presentation-order row as the page writes it."""
    if figure is None:
        return None
    goal = figure["goal"]
    noise = goal.get("bound")
    return {
        **figure,
        "shown_flip_rate": _interval(figure["flip_rate"], percent=True),
        "shown_goal": goal["text"] + (f" ({pct(noise)})" if noise is not None else ""),
        "shown_first": pct(figure.get("first_shown_share")),
    }


def _shown(kind: dict[str, Any]) -> dict[str, str]:
    """A kind's figures as the page writes them."""
    shown = {
        "flip_rate": _interval(kind["flip_rate"], percent=True),
        "score_change": _interval(kind["score_change"], percent=False),
    }
    for name in ("raised", "sensitivity", "specificity", "sensitivity_remove", "sensitivity_add"):
        if name in kind:
            figure = kind[name]
            shown[name] = (
                f"{pct(figure['value'])} of {figure['n']}"
                if figure["value"] is not None
                else f"— ({figure['why']})"
            )
    if kind.get("by_position"):
        shown["by_position"] = ", ".join(
            f"{where} {pct(f['value'])}" for where, f in kind["by_position"].items()
        )
    goal = kind.get("goal")
    if goal:
        bound = goal.get("bound")
        noise = "noise" in goal["text"] and bound is not None
        shown["goal"] = goal["text"] + (f" ({pct(bound)})" if noise else "")
    return shown


CONTEXT = 240  # characters of unchanged text shown beside each change of a worst example

CSV_COLUMNS = [
    "kind", "copies", "failed_rewrites", "flip_rate", "flip_rate_low", "flip_rate_high",
    "observations", "score_change", "score_change_low", "score_change_high",
    "raised_share", "sensitivity", "specificity", "goal", "goal_met", "judge_noise",
    "endpoint", "model", "template", "mode",
]  # fmt: skip


def report_rows(probe: Probe) -> list[list[Any]]:
    """The report, one row per kind, as the CSV and a spreadsheet read it."""
    report = probe.report
    judge = report.get("judge", {})
    noise = report.get("noise", {}).get("value")
    rows = []
    swap = report.get("order_swap")
    if swap:
        flips = swap["flip_rate"]
        rows.append([
            "order_swap", flips["n"], 0, flips["value"], flips["low"], flips["high"], flips["n"],
            None, None, None, None, None, None, swap["goal"]["text"], swap["goal"]["met"], noise,
            judge.get("endpoint", ""), judge.get("model", ""), judge.get("template", ""),
            "pairwise",
        ])  # fmt: skip
    for k in report.get("kinds", []):
        flips, change = k["flip_rate"], k["score_change"]
        goal = k.get("goal", {})
        rows.append([
            k["kind"], k["copies"], k["failed_count"], flips["value"], flips["low"], flips["high"],
            flips["n"], change["value"], change["low"], change["high"],
            k.get("raised", {}).get("value"), k.get("sensitivity", {}).get("value"),
            k.get("specificity", {}).get("value"), goal.get("text", ""), goal.get("met"), noise,
            judge.get("endpoint", ""), judge.get("model", ""), judge.get("template", ""),
            judge.get("mode", ""),
        ])  # fmt: skip
    return rows


@login_required
@require_GET
def probe_csv(request: SignedInRequest, slug: str, probe_id: int) -> HttpResponse:
    access = _access(request, slug)
    probe = probe_get(project=access.project, probe_id=probe_id)
    if probe.phase != Probe.Phase.DONE:
        raise Http404("This probe's report is not ready.")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in report_rows(probe):
        writer.writerow([csv_cell(v) for v in row])
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="probe-{probe.pk}.csv"'
    return response
