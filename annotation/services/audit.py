from __future__ import annotations

from typing import Any

from annotation.models import AuditEvent, Project


def audit(*, project: Project | None, actor, action: str, target: str = "", **data: Any) -> None:  # type: ignore[no-untyped-def]
    AuditEvent.objects.create(
        project=project,
        actor=actor if actor is not None and actor.is_authenticated else None,
        action=action,
        target=target[:200],
        data=data,
    )
