"""Give the demo project an endpoint on the offline fake LLM that `make run` starts.

The fake LLM is a provider (no key) like any LLM server the site admin sets up; it listens
on loopback, so LLM_PRIVATE_HOSTS must allow its address and port (`make run` and
`.ci/smoke` do)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.errors import ApplicationError
from annotation.projects.models import Project
from scoring.judges import services as judge_services
from scoring.judges.models import JudgeEndpoint, LLMProvider
from scoring.judges.services import provider_save

NAME = "Offline fake LLM"
# A second endpoint on the same server whose model obeys instructions to the grader hidden in
# a response (`make run` starts fakellm with `--follow-injections fake-judge-gullible`): a
# judge probe of it shows what a failed injection probe looks like.
GULLIBLE = ("Offline fake LLM, gullible (follows instructions hidden in responses)",
            "fake-judge-gullible")  # fmt: skip


class Command(BaseCommand):
    help = (
        "Add the offline fake-LLM provider and its endpoints (a careful judge, and one that "
        "follows instructions hidden in responses) to the demo project (idempotent)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", default="demo")
        parser.add_argument("--url", default="http://127.0.0.1:8001/v1")

    def handle(self, *args: Any, project: str, url: str, **options: Any) -> None:
        found = Project.objects.filter(slug=project).first()
        if found is None:
            self.stdout.write(f"No project '{project}'; no endpoint added.")
            return
        provider = LLMProvider.objects.filter(name=NAME).first() or LLMProvider(
            name=NAME, note="The offline fake LLM of `make run` (fakellm): no key."
        )
        provider.base_url, provider.api_key_env, provider.enabled = url, "", True
        try:
            provider_save(provider=provider)
            for name, model in ((NAME, "fake-judge"), GULLIBLE):
                endpoint = JudgeEndpoint.objects.filter(project=found, name=name).first()
                if endpoint is not None and endpoint.provider_id == provider.pk:
                    continue
                judge_services.endpoint_save(
                    project=found,
                    actor=None,
                    data={"name": name, "provider": provider.pk, "base_url": "", "model": model},
                    endpoint=endpoint,
                )
                self.stdout.write(f"Added the '{name}' endpoint ({url}) to '{project}'.")
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
