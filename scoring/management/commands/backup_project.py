"""Write a project to one JSON Lines file that restore_project reads back losslessly."""

from __future__ import annotations

import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.errors import ApplicationError
from annotation.projects.models import Project
from scoring.datasets.backup import backup_project


class Command(BaseCommand):
    help = "Back up a project (rubric versions, reviews, runs and judgments) to a file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="Project slug.")
        parser.add_argument("--out", required=True, help="The file to write, or - for stdout.")

    def handle(self, *args: Any, **o: Any) -> None:
        project = Project.objects.filter(slug=o["project"]).first()
        if project is None:
            raise CommandError(f"No project '{o['project']}'.")
        started = time.perf_counter()
        try:
            if o["out"] == "-":
                backup_project(project, sys.stdout.buffer)
                sys.stdout.flush()
                return
            summary = backup_project(project, o["out"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        records = sum(summary.counts.values())
        self.stdout.write(
            f"{project.slug}: {records:,} records, {summary.bytes:,} bytes, sha256 "
            f"{summary.sha256} -> {o['out']} ({time.perf_counter() - started:.1f} s)"
        )
