"""The one domain error type. Mapped once for the API (annotation.api_errors) and once
for htmx/page views (rendered as a message)."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    def __init__(self, message: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}
