"""Create the demo project and admin used by `make run`. Safe to run repeatedly."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandParser

from annotation.projects import services as project_services
from annotation.projects.models import Membership, Project, Role
from annotation.prompts import services as prompt_services
from annotation.prompts.demo_data import demo_records

DEMO_SLUG = "demo"


class Command(BaseCommand):
    help = (
        "Create the demo project from ../shared/data (rubrics, responses, preference pairs), "
        "a demo admin and a demo reviewer; print their credentials."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--data-dir",
            type=Path,
            default=settings.BASE_DIR.parent / "shared" / "data",
            help="Folder holding healthbench/ and mtbench/ (default: ../shared/data).",
        )

    def handle(self, *args: Any, data_dir: Path, **options: Any) -> None:
        admin, admin_password = _demo_user("admin", superuser=True)
        reviewer, reviewer_password = _demo_user("reviewer", superuser=False)

        project = Project.objects.filter(slug=DEMO_SLUG).first()
        if project is None:
            project = project_services.project_create(
                name="Demo: HealthBench and MT-Bench",
                slug=DEMO_SLUG,
                description=(
                    "Physician-written HealthBench rubrics and the MT-Bench questions, with "
                    "GPT-4's reference answers and synthetic responses (labelled synthetic) "
                    "to grade, compare and review."
                ),
                owner=admin,
            )
        Membership.objects.get_or_create(project=project, user=admin, defaults={"role": Role.OWNER})
        Membership.objects.get_or_create(
            project=project, user=reviewer, defaults={"role": Role.REVIEWER}
        )

        healthbench = data_dir / "healthbench" / "healthbench_sample_250.jsonl"
        if healthbench.is_file():
            self._import(project, admin, healthbench, "healthbench")
        else:
            self.stdout.write(f"Demo data not found, skipped: {healthbench}")
        for name, records in demo_records(data_dir):
            path = settings.VAR_DIR / name
            with path.open("w", encoding="utf-8") as out:
                out.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
            self._import(project, admin, path, "generic")
        self.stdout.write(
            self.style.SUCCESS(f"Demo admin: username 'admin', password '{admin_password}'")
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo reviewer: username 'reviewer', password '{reviewer_password}'"
            )
        )

    def _import(self, project: Project, actor: User, path: Path, fmt: str) -> None:
        report = prompt_services.data_import(project=project, path=path, fmt=fmt, actor=actor)
        self.stdout.write(
            f"Imported {path.name}: {report.prompts_created} prompts created, "
            f"{report.prompts_unchanged} unchanged, {report.criteria_created} criteria, "
            f"{report.responses_created} responses, "
            f"{report.preference_labels_created} preference pairs"
            + ("" if report.ok else f"; {report.error_count} errors")
        )


def _demo_user(username: str, *, superuser: bool) -> tuple[User, str]:
    """The demo user and its password (kept in var/, readable by the owner only)."""
    user_model = get_user_model()
    password_file = settings.VAR_DIR / f"demo-{username}-password"
    user = user_model.objects.filter(username=username).first()
    if user is None:
        password = secrets.token_urlsafe(12)
        email = f"{username}@example.com"
        if superuser:
            user = user_model.objects.create_superuser(username, email, password)
        else:
            user = user_model.objects.create_user(username, email, password)
        password_file.write_text(password)
        password_file.chmod(0o600)
    password = password_file.read_text().strip() if password_file.exists() else "(unchanged)"
    return user, password
