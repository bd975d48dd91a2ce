"""The one domain error type. Mapped once for the API (annotation.api_errors) and once
for htmx/page views (rendered as a message)."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    status_code = 400

    def __init__(self, message: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}


class NotAllowed(ApplicationError):
    """The user may not do this at all (not a matter of bad input): 403."""

    status_code = 403


class StaleVersionError(ApplicationError):
    """A save was based on a version that is no longer the rubric's current one."""

    status_code = 409

    def __init__(self, *, base: int | None, current: int) -> None:
        super().__init__(
            f"This rubric changed since you started: you edited version {base}, "
            f"version {current} is now current. Nothing was overwritten.",
            extra={"base_version": base, "current_version": current},
        )
        self.current = current


def check_text(text: str, what: str) -> str:
    """Free text from a form: PostgreSQL cannot store a NUL character, so refuse it."""
    if "\x00" in text:
        raise ApplicationError(f"{what} contains a NUL character, which cannot be stored.")
    return text
