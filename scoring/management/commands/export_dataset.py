"""Export a project's data as a training dataset, here and now (no worker needed).

The export is recorded like one started from the page (it appears on the Exports page, its
files kept under MEDIA_ROOT) and written by the same service; its files are then copied
to --out and listed with their rows and sha256.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.errors import ApplicationError
from annotation.projects.models import Project
from scoring.datasets import services as export_services
from scoring.datasets.kinds.registry import KINDS
from scoring.datasets.models import Export
from scoring.datasets.options import FORMATS, ORIGINS, ExportOptions


class Command(BaseCommand):
    help = "Export a project as a training dataset (an immutable snapshot) into a folder."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="Project slug.")
        parser.add_argument("--kind", required=True, help=f"One of: {', '.join(KINDS)}.")
        parser.add_argument("--format", required=True, help=f"One of: {', '.join(FORMATS)}.")
        parser.add_argument("--out", required=True, type=Path, help="Folder to copy files to.")
        parser.add_argument(
            "--versions", default="approved", help="approved (default) or latest rubric versions."
        )
        parser.add_argument(
            "--split", default="1,0,0", help="Train, validation, test shares, e.g. 0.8,0.1,0.1."
        )
        parser.add_argument(
            "--exclude-file",
            type=Path,
            default=None,
            help="Prompt external ids or prompt texts to leave out, one a line.",
        )
        parser.add_argument("--tags", default="", help="Comma-separated tags (any of them).")
        parser.add_argument("--sources", default="", help="Comma-separated response sources.")
        parser.add_argument("--since", default="", help="Prompts imported on or after YYYY-MM-DD.")
        parser.add_argument("--until", default="", help="Prompts imported on or before YYYY-MM-DD.")
        parser.add_argument("--license", default="", help="Written into the dataset card.")
        pairs = parser.add_argument_group("preference pairs (--kind preferences)")
        pairs.add_argument(
            "--origins",
            default=",".join(export_services.DEFAULT_ORIGINS),
            help=f"Comma-separated label origins among {', '.join(ORIGINS)} "
            f"(default: {','.join(export_services.DEFAULT_ORIGINS)}).",
        )
        pairs.add_argument(
            "--margins",
            action="store_true",
            help="Add a `margin` column (the rubric judge's margin; needs the judge origin; "
            "pairs without one are left out). TRL's RewardTrainer subtracts it in its loss.",
        )
        pairs.add_argument(
            "--plain", action="store_true", help="Plain text instead of chat messages."
        )
        pairs.add_argument(
            "--min-agreement", default="", help="Expert pairs: minimum reviewer agreement (0-1)."
        )
        pairs.add_argument(
            "--min-margin", default="", help="Judge pairs: minimum rubric score margin."
        )
        pairs.add_argument(
            "--consistent-only",
            action="store_true",
            help="Judge pairs: only those decided the same in both presentation orders.",
        )
        probes = parser.add_argument_group("judge probes' pairs (--kind augmented_preferences)")
        probes.add_argument(
            "--probe-kinds", default="", help="Comma-separated perturbation kinds (default: all)."
        )
        probes.add_argument(
            "--probe-passed-only",
            action="store_true",
            help="Only the pairs the probe's judge passed.",
        )

    def handle(self, *args: Any, **o: Any) -> None:
        project = Project.objects.filter(slug=o["project"]).first()
        if project is None:
            raise CommandError(f"No project '{o['project']}'.")
        out: Path = o["out"]
        if out.exists() and not out.is_dir():
            raise CommandError(f"--out {out} is a file, not a folder.")
        try:
            options = ExportOptions(
                kind=o["kind"],
                format=o["format"],
                versions=o["versions"],
                ratios=export_services.parse_ratios(o["split"]),
                tags=export_services.parse_list(o["tags"]),
                sources=export_services.parse_list(o["sources"]),
                since=o["since"],
                until=o["until"],
                exclude=self._exclusions(o["exclude_file"]),
                license=o["license"],
                origins=export_services.parse_list(o["origins"]),
                margins=o["margins"],
                conversational=not o["plain"],
                min_agreement=_number(o["min_agreement"], "--min-agreement"),
                min_margin=_number(o["min_margin"], "--min-margin") or 0.0,
                consistent_only=o["consistent_only"],
                probe_kinds=export_services.parse_list(o["probe_kinds"]),
                probe_passed_only=o["probe_passed_only"],
            )
            export = export_services.export_create(
                project=project, actor=None, options=options, enqueue=False
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        export_services.export_run(export.pk)
        export.refresh_from_db()
        if export.status != Export.Status.DONE:
            raise CommandError(f"Export #{export.pk} failed: {export.error}")
        out.mkdir(parents=True, exist_ok=True)
        for f in export.files:
            shutil.copyfile(export_services.export_file(export, f["name"]), out / f["name"])
        self.stdout.write(
            f"Export #{export.pk}: {export.rows_total} rows in {len(export.files)} file(s) "
            f"copied to {out}"
        )
        width = max(len(f["name"]) for f in export.files)
        for f in export.files:
            self.stdout.write(f"  {f['name']:<{width}}  {f['rows']:>9,} rows  {f['sha256']}")

    def _exclusions(self, path: Path | None) -> tuple[str, ...]:
        if path is None:
            return ()
        try:
            return export_services.parse_lines(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise CommandError(
                f"Cannot read the exclusion file {path}: {exc.strerror or exc}."
            ) from None
        except UnicodeDecodeError:
            raise CommandError(f"The exclusion file {path} is not UTF-8 text.") from None


def _number(raw: str, name: str) -> float | None:
    if not raw.strip():
        return None
    try:
        return float(raw)
    except ValueError:
        raise CommandError(f"{name} must be a number, got '{raw}'.") from None
