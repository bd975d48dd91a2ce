"""LLM providers: the servers the site admin trusts with the site's API keys.

A key is an environment variable of the web and worker processes; a provider binds the name
of that variable to one base URL. Project owners create judge endpoints on a provider and
choose the model and its parameters, never where the key goes. An endpoint without a
provider carries no key at all.
"""

from __future__ import annotations

from django.db import models

from annotation.models import Project
from scoring.models.coauthoring import ENV_NAME


class LLMProvider(models.Model):
    """A base URL and the NAME of the variable holding its key (never the key). Site admins
    (superusers) manage them in the Django admin."""

    name = models.CharField(max_length=100, unique=True)
    base_url = models.CharField(
        max_length=500, help_text="e.g. https://api.openai.com/v1; requests go here and only here."
    )
    api_key_env = models.CharField(
        max_length=100,
        blank=True,
        validators=[ENV_NAME],
        help_text="The NAME of the environment variable holding the key (never the key); "
        "empty for a server that needs none.",
    )
    enabled = models.BooleanField(
        default=True, help_text="Off: its endpoints send nothing (runs and jobs fail with why)."
    )
    projects = models.ManyToManyField(
        Project,
        blank=True,
        related_name="+",
        help_text="The projects whose owners may use it; none selected: every project.",
    )
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "LLM provider"

    def __str__(self) -> str:
        return self.name
