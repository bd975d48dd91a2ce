"""The report of one import of prompts, responses, rubrics and preference labels: how
many records the file held, what was created or found unchanged, and each bad record's
line and reason (the first ``IMPORT_MAX_REPORTED_ERRORS`` of them). An import job keeps it
as ``as_dict`` gives it, and the import page and API show it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from django.conf import settings


@dataclass
class ImportReport:
    file: str
    format: str
    skip_invalid: bool = False
    records: int = 0
    prompts_created: int = 0
    prompts_unchanged: int = 0
    responses_created: int = 0
    responses_unchanged: int = 0
    rubrics_created: int = 0
    rubrics_unchanged: int = 0
    criteria_created: int = 0
    preference_labels_created: int = 0
    preference_labels_unchanged: int = 0
    error_count: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The file had no bad record."""
        return self.error_count == 0

    @property
    def committed(self) -> bool:
        """The valid records were written: always in skip-invalid mode, else only when the
        file had no bad record."""
        return self.ok or self.skip_invalid

    @property
    def skipped(self) -> int:
        """Bad records left out of a skip-invalid import (their lines are in ``errors``)."""
        return self.error_count if self.skip_invalid else 0

    @property
    def changed(self) -> bool:
        return any(
            (
                self.prompts_created,
                self.responses_created,
                self.rubrics_created,
                self.preference_labels_created,
            )
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "ok": self.ok,
            "committed": self.committed,
            "skipped": self.skipped,
            "unchanged": self.committed and not self.changed,
        }

    def add_error(self, line: int, reason: str) -> None:
        self.error_count += 1
        if len(self.errors) < settings.IMPORT_MAX_REPORTED_ERRORS:
            self.errors.append({"line": line, "reason": reason})

    def add_counts(self, counts: Counter[str]) -> None:
        for name, n in counts.items():
            setattr(self, name, getattr(self, name) + n)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImportReport:
        """The report of ``as_dict`` (as an import job keeps it)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
