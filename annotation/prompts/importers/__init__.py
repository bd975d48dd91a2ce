"""Parsers for rubric and preference datasets; plain Python, no Django.

``detect_format`` guesses a file's format, ``iter_records`` streams it as ParsedRecord
or RecordError items, every read capped by a ``Limits`` (see ``reading``); the service
layer writes them to the database.
"""

from __future__ import annotations

from annotation.prompts.importers.formats import FORMATS, detect_format, iter_records
from annotation.prompts.importers.reading import Limits, describe_size, holds_at_most, open_text
from annotation.prompts.importers.records import (
    CATEGORIES,
    KINDS,
    ROLES,
    ImportFormatError,
    ImportLimitError,
    ParsedCriterion,
    ParsedRecord,
    ParsedResponse,
    RecordError,
)

__all__ = [
    "CATEGORIES",
    "FORMATS",
    "KINDS",
    "ROLES",
    "ImportFormatError",
    "ImportLimitError",
    "Limits",
    "ParsedCriterion",
    "ParsedRecord",
    "ParsedResponse",
    "RecordError",
    "describe_size",
    "detect_format",
    "holds_at_most",
    "iter_records",
    "open_text",
]
