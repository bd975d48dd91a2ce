"""Create the demo project and admin used by `make run`. Safe to run repeatedly."""

from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from annotation import services
from annotation.models import Membership, Project, Role

DEMO_SLUG = "demo"


class Command(BaseCommand):
    help = "Create a demo project from ../shared/data and a demo admin; print the credentials."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument(
            "--data-dir",
            type=Path,
            default=settings.BASE_DIR.parent / "shared" / "data",
            help="Folder holding healthbench/ and mtbench/ (default: ../shared/data).",
        )

    def handle(self, *args, data_dir: Path, **options):  # type: ignore[no-untyped-def]
        user_model = get_user_model()
        password_file = settings.VAR_DIR / "demo-admin-password"
        admin = user_model.objects.filter(username="admin").first()
        if admin is None:
            password = secrets.token_urlsafe(12)
            admin = user_model.objects.create_superuser("admin", "admin@example.com", password)
            password_file.write_text(password)
            password_file.chmod(0o600)
        password = password_file.read_text().strip() if password_file.exists() else "(unchanged)"

        project = Project.objects.filter(slug=DEMO_SLUG).first()
        if project is None:
            project = services.project_create(
                name="Demo: HealthBench and MT-Bench",
                slug=DEMO_SLUG,
                description="Physician-written HealthBench rubrics and the MT-Bench questions.",
                owner=admin,
            )
        Membership.objects.get_or_create(project=project, user=admin, defaults={"role": Role.OWNER})

        sources = [
            data_dir / "healthbench" / "healthbench_sample_250.jsonl",
            data_dir / "mtbench" / "question.jsonl",
        ]
        for path in sources:
            if not path.is_file():
                self.stdout.write(f"Demo data not found, skipped: {path}")
                continue
            fmt = "healthbench" if "healthbench" in path.parts else "generic"
            if fmt == "generic":
                path = _mtbench_as_generic(path)
            report = services.data_import(project=project, path=path, fmt=fmt, actor=admin)
            self.stdout.write(
                f"Imported {path.name}: {report.prompts_created} prompts created, "
                f"{report.prompts_unchanged} unchanged, {report.criteria_created} criteria"
                + ("" if report.ok else f"; {report.error_count} errors")
            )
        self.stdout.write(
            self.style.SUCCESS(f"Demo admin: username 'admin', password '{password}'")
        )


def _mtbench_as_generic(path: Path) -> Path:
    """MT-Bench questions as generic JSONL: the first user turn is the prompt, the
    category and second turn go into metadata."""
    import json

    out = settings.VAR_DIR / "mtbench_generic.jsonl"
    with path.open(encoding="utf-8") as src, out.open("w", encoding="utf-8") as dst:
        for line in src:
            if not line.strip():
                continue
            q = json.loads(line)
            dst.write(
                json.dumps(
                    {
                        "id": f"mtbench-{q['question_id']}",
                        "prompt": q["turns"][0],
                        "metadata": {
                            "dataset": "mt-bench",
                            "category": q.get("category", ""),
                            "second_turn": q["turns"][1] if len(q["turns"]) > 1 else "",
                        },
                    }
                )
                + "\n"
            )
    return out
