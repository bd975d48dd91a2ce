"""What an export asks for, checked once: a bad option is a clear error before any work."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from annotation.errors import ApplicationError
from scoring.datasets.kinds.registry import KINDS
from scoring.probes.services import KINDS as PROBE_KINDS

FORMATS = {"jsonl": "JSONL", "parquet": "Parquet", "hf": "Hugging Face datasets folder"}
ORIGINS = ("dataset", "expert", "judge")
# Preference pairs' label origins when none are named.
DEFAULT_ORIGINS: tuple[str, ...] = ("dataset", "expert")


@dataclass(frozen=True)
class ExportOptions:
    kind: str
    format: str = "jsonl"
    versions: str = "approved"  # approved | latest
    ratios: tuple[float, float, float] = (1.0, 0.0, 0.0)  # train, validation, test
    tags: tuple[str, ...] = ()  # keep rubrics with a criterion carrying one of these tags
    sources: tuple[str, ...] = ()  # responses from these sources only (empty: all)
    since: str = ""  # ISO dates on the prompt's import time, inclusive
    until: str = ""
    exclude: tuple[str, ...] = ()  # prompt external ids or prompt texts (contamination)
    origins: tuple[str, ...] = DEFAULT_ORIGINS  # preference pairs: where labels came from
    min_agreement: float | None = None  # expert pairs: share of reviewers agreeing
    consistent_only: bool = False  # judge pairs: both presentation orders agreed
    min_margin: float = 0.0  # judge pairs: rubric score margin between chosen and rejected
    conversational: bool = True  # preference pairs: messages (True) or plain text
    margins: bool = False  # preference pairs: a `margin` column (TRL's reward loss uses it)
    probe_kinds: tuple[str, ...] = ()  # augmented pairs: these perturbation kinds (empty: all)
    probe_passed_only: bool = False  # augmented pairs: only those the probe's judge passed
    license: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("ratios", "tags", "sources", "exclude", "origins", "probe_kinds"):
            data[name] = list(data[name])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExportOptions:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for name in ("ratios", "tags", "sources", "exclude", "origins", "probe_kinds"):
            if name in known:
                known[name] = tuple(known[name])
        return cls(**known).checked()

    def checked(self) -> ExportOptions:
        if self.kind not in KINDS:
            raise ApplicationError(f"Unknown export kind “{self.kind}”: {', '.join(KINDS)}.")
        if self.format not in FORMATS:
            raise ApplicationError(f"Unknown format “{self.format}”: {', '.join(FORMATS)}.")
        if self.versions not in ("approved", "latest"):
            raise ApplicationError("Rubric versions are “approved” or “latest”.")
        if (
            len(self.ratios) != 3
            or any(r < 0 for r in self.ratios)
            or abs(sum(self.ratios) - 1) > 1e-9
        ):
            raise ApplicationError("Split ratios are three non-negative numbers adding up to 1.")
        if set(self.origins) - set(ORIGINS) or not self.origins:
            raise ApplicationError(f"Label origins are among {', '.join(ORIGINS)}.")
        if self.min_agreement is not None and not 0 <= self.min_agreement <= 1:
            raise ApplicationError("Minimum agreement is between 0 and 1.")
        if self.min_margin < 0:
            raise ApplicationError("Minimum margin is a number of at least 0.")
        if set(self.probe_kinds) - set(PROBE_KINDS):
            raise ApplicationError(f"Probe kinds are among {', '.join(PROBE_KINDS)}.")
        if self.kind == "preferences" and self.margins and "judge" not in self.origins:
            raise ApplicationError(
                "Margins come from the rubric judge's pairs: add the judge to the label "
                "origins, or export without margins."
            )
        return self
