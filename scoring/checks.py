"""System checks of the scoring app's settings (``manage.py check``, runserver, migrate)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register

from scoring.engine.netguard import NetworkPolicy


@register()
def llm_private_hosts(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """A bad LLM_PRIVATE_HOSTS entry is an error at start, not at the first LLM call."""
    try:
        NetworkPolicy.parse(settings.LLM_PRIVATE_HOSTS)
    except ValueError as exc:
        return [Error(f"LLM_PRIVATE_HOSTS: {exc}.", id="scoring.E001")]
    return []
