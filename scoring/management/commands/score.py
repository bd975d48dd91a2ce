"""Launch a scoring run from the command line, or print its preview with --dry-run."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.errors import ApplicationError
from annotation.projects.models import Project
from scoring.judges.models import JudgeEndpoint
from scoring.runs import planning as run_planning
from scoring.runs import services as run_services
from scoring.runs.models import Run
from scoring.runs.modes.registry import mode_for


class Command(BaseCommand):
    help = "Score a project's responses against their rubrics (or compare them in pairs)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="Project slug.")
        parser.add_argument("--judge", required=True, help="Judge endpoint name.")
        parser.add_argument("--mode", required=True, choices=Run.Mode.values)
        parser.add_argument(
            "--sources", nargs="*", default=[], help="Response sources (default: all)."
        )
        parser.add_argument("--versions", choices=Run.Versions.values, default=Run.Versions.LATEST)
        parser.add_argument("--samples", type=int, default=1)
        parser.add_argument("--temperature", type=float, default=None)
        parser.add_argument("--pairs", choices=Run.PairPlan.values, default=Run.PairPlan.ALL)
        parser.add_argument("--baseline", default="", help="Baseline source for --pairs baseline.")
        parser.add_argument("--budget", type=float, default=None, help="Pause at this cost.")
        parser.add_argument("--dry-run", action="store_true", help="Print the preview only.")
        parser.add_argument("--json", action="store_true", help="Machine-readable output.")

    def handle(self, *args: Any, **o: Any) -> None:
        project = Project.objects.filter(slug=o["project"]).first()
        if project is None:
            raise CommandError(f"No project '{o['project']}'.")
        endpoint = JudgeEndpoint.objects.filter(project=project, name=o["judge"]).first()
        if endpoint is None:
            names = ", ".join(project.judge_endpoints.values_list("name", flat=True)) or "none"
            raise CommandError(f"No judge endpoint '{o['judge']}' in '{project.slug}' ({names}).")
        options = {
            "sources": o["sources"], "prompt_ids": [], "versions": o["versions"],
            "samples": o["samples"], "temperature": o["temperature"],
            "pair_plan": o["pairs"] if mode_for(o["mode"]).compares_pairs else "",
            "baseline_source": o["baseline"],
        }  # fmt: skip
        try:
            if o["dry_run"]:
                plan = run_planning.plan_units(
                    project=project, endpoint=endpoint, mode=o["mode"], **options
                )
                preview = run_planning.preview(plan, endpoint=endpoint, mode=o["mode"])
                self._print(vars(preview), o["json"], "Preview (nothing was launched)")
                return
            run = run_services.run_create(
                project=project, actor=None, endpoint=endpoint, mode=o["mode"],
                budget=o["budget"], **options,
            )  # fmt: skip
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self._print(
            {"run": run.pk, "judgments": run.total, "chunks": run.chunks.count()},
            o["json"],
            "Run queued; a worker picks it up",
        )

    def _print(self, data: dict[str, Any], as_json: bool, title: str) -> None:
        if as_json:
            self.stdout.write(json.dumps(data))
            return
        self.stdout.write(title)
        for name, value in data.items():
            if value is None:
                shown = "—"
            elif isinstance(value, float):
                shown = f"{value:,.4f}"
            else:
                shown = f"{value:,}"
            self.stdout.write(f"  {name.replace('_', ' '):<16} {shown}")
