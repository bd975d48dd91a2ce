"""LLM providers: the site admin binds each API key variable to one base URL.

Endpoints that named a key variable move onto a provider made from their base URL and that
variable (one provider per pair), so nothing is lost. A provider whose base URL is the
site's OPENAI_BASE_URL stays enabled; any other is created disabled, waiting for a site
admin to review where it sends the key (an owner may have pointed it anywhere), and its
endpoints fail with that reason until then. Each provider is open only to the projects
whose endpoints it was made from; a site admin may open it to more.
"""

import django.core.validators
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from urllib.parse import urlsplit


def _name(base_url, variable, taken):
    host = urlsplit(base_url).hostname or base_url or "provider"
    stem = f"{host} · {variable}"[:90]
    name, n = stem, 1
    while name in taken:
        n += 1
        name = f"{stem} ({n})"
    taken.add(name)
    return name


def to_providers(apps, schema_editor):
    JudgeEndpoint = apps.get_model("scoring", "JudgeEndpoint")
    LLMProvider = apps.get_model("scoring", "LLMProvider")
    trusted = getattr(settings, "OPENAI_BASE_URL", "").rstrip("/")
    taken = set(LLMProvider.objects.values_list("name", flat=True))
    made = {}
    endpoints = JudgeEndpoint.objects.exclude(api_key_env="").select_related("project")
    for endpoint in endpoints.order_by("pk"):
        base_url = endpoint.base_url.rstrip("/")
        key = (base_url, endpoint.api_key_env)
        if key not in made:
            made[key] = LLMProvider.objects.create(
                name=_name(base_url, endpoint.api_key_env, taken),
                base_url=base_url,
                api_key_env=endpoint.api_key_env,
                enabled=bool(trusted) and base_url == trusted,
                note="Made from judge endpoints that named this key variable when providers "
                "were introduced; check the base URL before enabling it.",
            )
        made[key].note += f"\n- “{endpoint.name}” of project {endpoint.project.slug}"
        made[key].save(update_fields=["note"])
        made[key].projects.add(endpoint.project_id)
        endpoint.provider = made[key]
        endpoint.base_url = base_url
        endpoint.save(update_fields=["provider", "base_url"])


def from_providers(apps, schema_editor):
    JudgeEndpoint = apps.get_model("scoring", "JudgeEndpoint")
    for endpoint in JudgeEndpoint.objects.exclude(provider=None).select_related("provider"):
        endpoint.api_key_env = endpoint.provider.api_key_env
        endpoint.base_url = endpoint.provider.base_url
        endpoint.provider = None
        endpoint.save(update_fields=["api_key_env", "base_url", "provider"])


class Migration(migrations.Migration):

    dependencies = [
        ("annotation", "0004_pairwise_reviews"),
        ("scoring", "0005_exports"),
    ]

    operations = [
        migrations.CreateModel(
            name="LLMProvider",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100, unique=True)),
                ("base_url", models.CharField(help_text="e.g. https://api.openai.com/v1; requests go here and only here.", max_length=500)),
                ("api_key_env", models.CharField(blank=True, help_text="The NAME of the environment variable holding the key (never the key); empty for a server that needs none.", max_length=100, validators=[django.core.validators.RegexValidator("^[A-Z_][A-Z0-9_]{0,99}$", "The name of an environment variable: capital letters, digits and underscores.")])),
                ("enabled", models.BooleanField(default=True, help_text="Off: its endpoints send nothing (runs and jobs fail with why).")),
                ("note", models.TextField(blank=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("projects", models.ManyToManyField(blank=True, help_text="The projects whose owners may use it; none selected: every project.", related_name="+", to="annotation.project")),
            ],
            options={
                "verbose_name": "LLM provider",
                "ordering": ["name"],
            },
        ),
        migrations.AddField(
            model_name="judgeendpoint",
            name="provider",
            field=models.ForeignKey(blank=True, help_text="The site's provider whose URL and key it uses; none: no key is sent.", null=True, on_delete=django.db.models.deletion.PROTECT, related_name="endpoints", to="scoring.llmprovider"),
        ),
        migrations.AlterField(
            model_name="judgeendpoint",
            name="base_url",
            field=models.CharField(blank=True, help_text="e.g. http://127.0.0.1:8001/v1; on a provider, always the provider's.", max_length=500),
        ),
        migrations.RunPython(to_providers, from_providers),
    ]
