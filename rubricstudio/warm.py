"""What a web process loads before its first request: every view module (through the URL
patterns) and every template of the studio, compiled. Without it the first request of each
page in each worker process pays for both (about half a second), and a user who happens to
be that request waits for it."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.template import engines
from django.urls import get_resolver


def studio_templates() -> list[str]:
    """The names of the studio's own templates (``templates/``)."""
    root = Path(settings.BASE_DIR) / "templates"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.html"))


def warm() -> int:
    """Import the views and compile the templates (the cached template loader keeps them);
    returns how many templates were compiled. A template that does not compile raises here,
    at start-up, not in front of the user who opens its page."""
    get_resolver().url_patterns  # noqa: B018 - resolving the URLconf imports every view
    engine = engines["django"]
    names = studio_templates()
    for name in names:
        engine.get_template(name)
    return len(names)
