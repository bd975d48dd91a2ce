"""Plain records produced by the importers (no Django here).

The service layer turns these into model rows; keeping them as dataclasses lets the
parsers be tested without a database or settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant", "developer", "tool")
CATEGORIES = ("", "essential", "important", "optional", "pitfall")
KINDS = ("hard_rule", "principle")


@dataclass
class ParsedResponse:
    source: str
    content: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ParsedCriterion:
    text: str
    points: float
    category: str = ""  # one of CATEGORIES
    kind: str = "principle"  # one of KINDS
    tags: list[str] = field(default_factory=list)
    # The rubric item's fields that no column of Criterion holds (an item id, a ResearchQA
    # item's citation_metadata, ...), kept as they are in the source.
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ParsedRecord:
    line: int  # 1-based line number; for JSON array files the 1-based element index
    external_id: str
    messages: list[dict[str, str]]
    reference_answer: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    responses: list[ParsedResponse] = field(default_factory=list)
    criteria: list[ParsedCriterion] = field(default_factory=list)
    preference: tuple[int, int] | None = None  # (chosen, rejected) indexes into responses

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (sharing the record's lists and dicts: serialise it, don't keep
        it); ``from_dict`` gives an equal record back."""
        return {
            **vars(self),
            "responses": [vars(r) for r in self.responses],
            "criteria": [vars(c) for c in self.criteria],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParsedRecord:
        preference = data.get("preference")
        return cls(
            **{
                **data,
                "responses": [ParsedResponse(**r) for r in data.get("responses", [])],
                "criteria": [ParsedCriterion(**c) for c in data.get("criteria", [])],
                "preference": None if preference is None else tuple(preference),
            }
        )


@dataclass
class RecordError:
    line: int
    reason: str


class ImportFormatError(Exception):
    """A whole-file problem: unknown format, unreadable file, undetectable format."""


class ImportLimitError(ImportFormatError):
    """The file passes one of the import caps (see ``reading.Limits``); the message names
    the cap's setting. Reading stops there, so nothing past the cap is held in memory."""
