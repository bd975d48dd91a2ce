"""Give the demo project an endpoint on the offline fake LLM that `make run` starts."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from annotation.models import Project
from scoring import services
from scoring.models import JudgeEndpoint


class Command(BaseCommand):
    help = "Add the offline fake-LLM judge endpoint to the demo project (idempotent)."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--project", default="demo")
        parser.add_argument("--url", default="http://127.0.0.1:8001/v1")

    def handle(self, *args, project: str, url: str, **options):  # type: ignore[no-untyped-def]
        found = Project.objects.filter(slug=project).first()
        if found is None:
            self.stdout.write(f"No project '{project}'; no endpoint added.")
            return
        if JudgeEndpoint.objects.filter(project=found, name="Offline fake LLM").exists():
            return
        services.endpoint_save(
            project=found,
            actor=None,
            data={"name": "Offline fake LLM", "base_url": url, "model": "fake-judge"},
        )
        self.stdout.write(f"Added the 'Offline fake LLM' endpoint ({url}) to '{project}'.")
