"""Give the demo project a local judge: a tiny Llama-style model with random weights, built
into the first of LOCAL_MODEL_DIRS, so local runs can be tried with no download. Its
probabilities mean nothing (random weights); a real judge is a directory of a trained
causal LM (e.g. an instruction-tuned Qwen2.5) placed under LOCAL_MODEL_DIRS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.projects.models import Project
from scoring.judges import services as judge_services
from scoring.judges.models import JudgeEndpoint

NAME = "Tiny local judge (random weights)"


class Command(BaseCommand):
    help = "Build a tiny random local judge and add it to the demo project (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", default="demo")

    def handle(self, *args: Any, project: str, **options: Any) -> None:
        found = Project.objects.filter(slug=project).first()
        if found is None:
            self.stdout.write(f"No project '{project}'; no local judge added.")
            return
        if not settings.LOCAL_MODEL_DIRS:
            raise CommandError("LOCAL_MODEL_DIRS is empty: nowhere to put the model.")
        directory = Path(settings.LOCAL_MODEL_DIRS[0]) / "demo-tiny-judge"
        if not (directory / "config.json").is_file():
            try:
                from scoring.judges.local import synthetic
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise CommandError(f"Install requirements-ml.txt first: {exc}") from None
            tokenizer = synthetic.build_tokenizer(directory, chat=True)
            synthetic.build_model(directory, vocab_size=len(tokenizer), initializer_range=0.2)
        if JudgeEndpoint.objects.filter(project=found, name=NAME).exists():
            return
        judge_services.endpoint_save(
            project=found,
            actor=None,
            data={"name": NAME, "backend": "local", "model_path": str(directory), "device": "cpu"},
        )
        self.stdout.write(f"Added '{NAME}' ({directory}) to '{project}'.")
