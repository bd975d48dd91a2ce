"""Parsers for rubric and preference datasets; plain Python, no Django.

``detect_format`` guesses a file's format, ``iter_records`` streams it as ParsedRecord
or RecordError items; the service layer writes them to the database.
"""

from __future__ import annotations

from .formats import FORMATS, detect_format, iter_records, open_text
from .records import (
    CATEGORIES,
    KINDS,
    ROLES,
    ImportFormatError,
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
    "ParsedCriterion",
    "ParsedRecord",
    "ParsedResponse",
    "RecordError",
    "detect_format",
    "iter_records",
    "open_text",
]
