from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.errors import ApplicationError
from annotation.projects.models import Project
from annotation.prompts import services as prompt_services
from annotation.prompts.import_report import ImportReport
from annotation.prompts.importers.formats import FORMATS


class Command(BaseCommand):
    help = (
        "Import prompts, responses, rubrics and preference labels from PATH into a project. "
        "All or nothing by default: a file with any bad record imports nothing (exit code 1). "
        "With --skip-invalid the valid records are imported and the bad ones are skipped "
        "and listed (exit code 0). The import caps apply as on the page (IMPORT_MAX_* "
        "settings, except the upload size): a file over one is refused (exit code 1)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--project", required=True, help="Project slug.")
        parser.add_argument(
            "--create-project", action="store_true", help="Create the project if it is missing."
        )
        parser.add_argument("--format", choices=FORMATS, help="Skip auto-detection.")
        parser.add_argument(
            "--skip-invalid",
            action="store_true",
            help="Import the valid records; skip the bad ones and list them with their lines.",
        )
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args: Any, **opts: Any) -> None:
        path: Path = opts["path"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file.")
        slug = opts["project"]
        project = Project.objects.filter(slug=slug).first()
        created = project is None
        if project is None:
            if not opts["create_project"]:
                raise CommandError(f"No project '{slug}'. Pass --create-project to create it.")
            project = Project.objects.create(slug=slug, name=slug.replace("-", " ").title())
        try:
            # Not inside a transaction of its own: the file is read and checked with no
            # lock held; the import takes the project's lock only to write.
            report = prompt_services.data_import(
                project=project,
                path=path,
                fmt=opts["format"],
                skip_invalid=opts["skip_invalid"],
            )
        except ApplicationError as exc:
            if created:
                project.delete()  # nothing was imported into it
            if opts["json"]:
                self.stdout.write(json.dumps({"ok": False, "error": exc.message}))
            raise CommandError(exc.message) from exc
        if created and not report.committed:
            project.delete()

        if opts["json"]:
            self.stdout.write(json.dumps(report.as_dict()))
        else:
            self._print(report)
        if not report.committed:
            raise CommandError(
                f"{report.file}: {report.error_count} bad record(s); nothing was imported."
            )

    def _print(self, report: ImportReport) -> None:
        w = self.stdout.write
        w(f"{report.file} ({report.format}): {report.records} records")
        if report.committed:
            w(
                f"  prompts:           {report.prompts_created} created, {report.prompts_unchanged} unchanged"
            )
            w(
                f"  responses:         {report.responses_created} created, {report.responses_unchanged} unchanged"
            )
            w(
                f"  rubrics:           {report.rubrics_created} created, {report.rubrics_unchanged} unchanged"
            )
            w(f"  criteria:          {report.criteria_created} created")
            w(
                f"  preference labels: {report.preference_labels_created} created, "
                f"{report.preference_labels_unchanged} unchanged"
            )
            if not report.changed:
                w("  unchanged: nothing new in this file")
        if report.skipped:
            self.stderr.write(f"  skipped {report.skipped} bad record(s):")
        for error in report.errors:
            self.stderr.write(f"  line {error['line']}: {error['reason']}")
        if report.error_count > len(report.errors):
            self.stderr.write(f"  … and {report.error_count - len(report.errors)} more")
