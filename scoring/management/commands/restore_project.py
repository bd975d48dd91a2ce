"""Restore a backup written by backup_project as a new project, all or nothing."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.errors import ApplicationError
from scoring.datasets.backup import restore_project


class Command(BaseCommand):
    help = "Restore a project backup into this database (refuses an existing slug)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="A file written by backup_project.")
        parser.add_argument("--slug", default=None, help="Restore under this slug instead.")
        parser.add_argument(
            "--users",
            choices=["create", "require"],
            default="create",
            help="create: make missing users (unusable passwords); require: refuse instead.",
        )

    def handle(self, *args: Any, **o: Any) -> None:
        started = time.perf_counter()
        try:
            project = restore_project(o["file"], slug=o["slug"], users=o["users"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        except OSError as exc:
            raise CommandError(f"{o['file']}: {exc.strerror or exc}") from exc
        self.stdout.write(
            f"Restored project '{project.slug}' ({time.perf_counter() - started:.1f} s)."
        )
