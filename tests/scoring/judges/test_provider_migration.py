"""Migrations 0006/0007: endpoints that named a key variable move onto providers (one per
base URL and variable), so nothing is lost; a provider on the site's OPENAI_BASE_URL stays
enabled, any other waits, disabled, for a site admin to check where it sends the key; each
is open only to the projects it came from; and the migration reverses."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("scoring", "0005_exports")]
AFTER = [("scoring", "0007_endpoint_key_on_provider_only")]


def _migrate(targets):  # type: ignore[no-untyped-def]
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_key_variables_move_onto_providers_and_back(settings):
    settings.OPENAI_BASE_URL = "https://api.openai.com/v1"
    try:
        old = _migrate(BEFORE)
        Project = old.get_model("annotation", "Project")
        Endpoint = old.get_model("scoring", "JudgeEndpoint")
        alpha = Project.objects.create(slug="alpha", name="Alpha")
        beta = Project.objects.create(slug="beta", name="Beta")
        for project, name, url, key in [
            (alpha, "gpt", "https://api.openai.com/v1/", "OPENAI_API_KEY"),
            (beta, "gpt", "https://api.openai.com/v1", "OPENAI_API_KEY"),
            (alpha, "evil", "https://collector.example/v1", "OPENAI_API_KEY"),
            (alpha, "vllm", "http://10.0.0.5:8000/v1", ""),
        ]:
            Endpoint.objects.create(
                project=project, name=name, base_url=url, model="m", api_key_env=key
            )

        new = _migrate(AFTER)
        Provider = new.get_model("scoring", "LLMProvider")
        Endpoint = new.get_model("scoring", "JudgeEndpoint")
        rows = {
            (e.project.slug, e.name): e
            for e in Endpoint.objects.select_related("provider", "project")
        }
        assert Provider.objects.count() == 2  # one per (base URL, key variable)
        openai = rows["alpha", "gpt"].provider
        assert rows["beta", "gpt"].provider == openai
        assert (openai.base_url, openai.api_key_env, openai.enabled) == (
            "https://api.openai.com/v1",
            "OPENAI_API_KEY",
            True,
        )
        assert "“gpt” of project alpha" in openai.note and "of project beta" in openai.note
        evil = rows["alpha", "evil"].provider
        assert (evil.base_url, evil.enabled) == ("https://collector.example/v1", False)
        # each provider is open only to the projects whose endpoints it was made from
        assert {p.slug for p in openai.projects.all()} == {"alpha", "beta"}
        assert {p.slug for p in evil.projects.all()} == {"alpha"}
        assert rows["alpha", "vllm"].provider is None  # it named no key: stays without one
        assert rows["alpha", "vllm"].base_url == "http://10.0.0.5:8000/v1"
        assert "api_key_env" not in {f.name for f in Endpoint._meta.get_fields()}

        back = _migrate(BEFORE)
        Endpoint = back.get_model("scoring", "JudgeEndpoint")
        keys = dict(
            Endpoint.objects.values_list("name", "api_key_env").filter(project__slug="alpha")
        )
        assert keys == {"gpt": "OPENAI_API_KEY", "evil": "OPENAI_API_KEY", "vllm": ""}
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
