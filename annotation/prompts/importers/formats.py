"""Format detection and streaming record iteration for import files.

JSONL and CSV files (optionally gzip-compressed) are read line by line and JSON array
files element by element, each read capped (``reading.Limits``): a file of any size, or
built to exhaust memory, is processed holding about one record at a time.
"""

from __future__ import annotations

import csv
import logging
import os
import zlib
from collections.abc import Generator, Iterator, Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

from annotation.prompts.importers.hh_rlhf import parse_hh_rlhf
from annotation.prompts.importers.json_reading import decode_line, iter_array
from annotation.prompts.importers.parsers import (
    Parser,
    parse_csv_row,
    parse_generic,
    parse_healthbench,
    parse_rar,
    parse_researchqa,
    parse_trl,
)
from annotation.prompts.importers.reading import (
    BoundedLines,
    Limits,
    LineTooLong,
    iter_lines,
    limited,
    line_too_long,
    open_text,
)
from annotation.prompts.importers.records import ImportFormatError, ParsedRecord, RecordError
from annotation.prompts.importers.validation import InvalidRecord

logger = logging.getLogger(__name__)

FORMATS = ("healthbench", "rar", "researchqa", "trl", "hh-rlhf", "generic")

_PARSERS: dict[str, Parser] = {
    "healthbench": parse_healthbench,
    "rar": parse_rar,
    "researchqa": parse_researchqa,
    "trl": parse_trl,
    "hh-rlhf": parse_hh_rlhf,
    "generic": parse_generic,
}

# Errors that mean the file itself cannot be read (missing, bad gzip, not UTF-8, truncated).
_READ_ERRORS = (OSError, UnicodeDecodeError, EOFError, zlib.error)

StrPath = str | os.PathLike[str]
Item = ParsedRecord | RecordError


def _is_csv(path: StrPath) -> bool:
    return str(path).lower().endswith((".csv", ".csv.gz"))


def _first_char(path: StrPath, limits: Limits) -> str:
    """The first non-whitespace character of the file, or "" when it is blank."""
    with open_text(path, limits=limits) as handle:
        while chunk := handle.read(4096):
            stripped = chunk.lstrip()
            if stripped:
                return stripped[0]
    return ""


# Cells and lines may hold long responses; the csv module's default cap is 128 KiB. A
# record is also bounded by the line cap (``BoundedLines``) before the module sees it.
csv.field_size_limit(64 * 1024 * 1024)

_JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")


def _is_json_array(path: StrPath, limits: Limits) -> bool:
    """A whole-file JSON array, as opposed to JSONL whose first record is a list."""
    return not str(path).lower().endswith(_JSONL_SUFFIXES) and _first_char(path, limits) == "["


def _iter_objects(
    path: StrPath, limits: Limits
) -> Generator[tuple[int, Any] | RecordError, None, None]:
    """(line, decoded value) per record, or a RecordError for a line that is not JSON, is
    too long, too deeply nested or holds a NUL."""
    with open_text(path, limits=limits) as handle:
        if _is_json_array(path, limits):
            yield from iter_array(handle, limits)
            return
        for line_no, line in iter_lines(handle, limits.max_line):
            if line is None:
                yield RecordError(line_no, f"the line is {line_too_long(limits.max_line)}")
                continue
            if not line.strip():
                continue
            try:
                yield line_no, decode_line(line, limits.max_depth)
            except ValueError as exc:
                yield RecordError(line_no, str(exc))


def _apply(parser: Parser, value: Any, line: int) -> Item:
    if not isinstance(value, dict):
        kind = "a list" if isinstance(value, list) else type(value).__name__
        return RecordError(line, f"expected a JSON object, got {kind}")
    try:
        return parser(value, line)
    except InvalidRecord as exc:
        return RecordError(line, str(exc))
    except Exception as exc:  # a record no rule foresaw: reported, never a crash
        logger.exception("Import parser failed on record %s", line)
        return RecordError(line, f"cannot be read ({type(exc).__name__})")


def _iter_json_records(path: StrPath, parser: Parser, limits: Limits) -> Iterator[Item]:
    for item in _iter_objects(path, limits):
        yield item if isinstance(item, RecordError) else _apply(parser, item[1], item[0])


def _csv_reader(lines: BoundedLines, path: StrPath) -> csv.DictReader[str]:
    reader = csv.DictReader(lines)
    try:
        names = reader.fieldnames or []
    except LineTooLong as exc:
        raise ImportFormatError(
            f"{Path(path).name}: the CSV header is {line_too_long(lines.max_chars)}"
        ) from exc
    fields = [name.strip() for name in names]
    if "prompt" not in fields:
        found = ", ".join(fields) or "no header"
        raise ImportFormatError(f"{Path(path).name}: CSV needs a 'prompt' column (found: {found})")
    reader.fieldnames = fields
    return reader


def _iter_csv_records(path: StrPath, limits: Limits) -> Iterator[Item]:
    with open_text(path, newline="", limits=limits) as handle:
        lines = BoundedLines(handle, limits.max_line)
        reader = _csv_reader(lines, path)
        while True:
            lines.start_record()
            start = lines.line_no + 1  # a quoted cell may span several lines
            try:
                row = next(reader)
            except StopIteration:
                return
            except LineTooLong as exc:
                yield RecordError(exc.line, f"the record is {line_too_long(limits.max_line)}")
                continue
            except csv.Error as exc:
                raise ImportFormatError(
                    f"{Path(path).name}: unreadable CSV at line {lines.line_no}: {exc}"
                ) from exc
            if any("\x00" in (v or "") for v in row.values() if isinstance(v, str)):
                yield RecordError(start, "contains a NUL character, which cannot be stored")
                continue
            yield _apply_csv(row, start)


def _apply_csv(row: dict[str | None, Any], line: int) -> Item:
    try:
        return parse_csv_row(row, line)
    except InvalidRecord as exc:
        return RecordError(line, str(exc))


def _guard(path: StrPath, items: Iterator[Item]) -> Iterator[Item]:
    """Re-raise low-level read errors as ImportFormatError naming the file."""
    try:
        yield from items
    except _READ_ERRORS as exc:
        raise ImportFormatError(f"cannot read {Path(path).name}: {exc}") from exc


def _format_for(record: Mapping[str, Any]) -> str | None:
    keys = record.keys()
    if {"rubrics", "prompt"} <= keys:
        return "healthbench"
    if {"question", "rubric"} <= keys:
        return "rar"
    if {"query", "rubric"} <= keys:
        return "researchqa"
    if {"chosen", "rejected"} <= keys:
        chosen = record["chosen"]
        if "prompt" in keys or isinstance(chosen, list):  # list: TRL with implicit prompt
            return "trl"
        if isinstance(chosen, str) and "\n\nHuman:" in chosen:
            return "hh-rlhf"
    if "prompt" in keys or "messages" in keys:
        return "generic"
    return None


def detect_format(path: StrPath, *, limits: Limits | None = None) -> str:
    """Guess the format of ``path`` from its first record (a CSV is always "generic")."""
    name = Path(path).name
    limits = limits or Limits()
    try:
        if _is_csv(path):
            with open_text(path, newline="", limits=limits) as handle:
                _csv_reader(BoundedLines(handle, limits.max_line), path)
            return "generic"
        with closing(_iter_objects(path, limits)) as items:
            first = next(items, None)
    except _READ_ERRORS as exc:
        raise ImportFormatError(f"cannot read {name}: {exc}") from exc
    if first is None:
        raise ImportFormatError(f"cannot detect the format of {name}: it has no records")
    if isinstance(first, RecordError):
        raise ImportFormatError(
            f"cannot detect the format of {name}: line {first.line}: {first.reason}"
        )
    line, record = first
    if not isinstance(record, dict):
        raise ImportFormatError(
            f"cannot detect the format of {name}: record {line} is not a JSON object"
        )
    fmt = _format_for(record)
    if fmt is None:
        keys = ", ".join(sorted(record)) or "none"
        raise ImportFormatError(
            f"cannot detect the format of {name}: the first record's keys ({keys}) match "
            f"none of {', '.join(FORMATS)}"
        )
    return fmt


def iter_records(
    path: StrPath, fmt: str | None = None, *, limits: Limits | None = None
) -> Iterator[Item]:
    """Yield a ParsedRecord or a RecordError for every non-blank record of ``path``.

    ``fmt`` is one of FORMATS (detected when omitted). A bad record yields a RecordError
    and iteration goes on, so every bad line is reported. Whole-file problems (unknown
    format, unreadable file, a CSV without a ``prompt`` column, a broken JSON array, a
    cap of ``limits`` passed: ImportLimitError) raise ImportFormatError: the format check
    happens at call time, read errors while iterating.
    """
    limits = limits or Limits()
    if fmt is None:
        fmt = detect_format(path, limits=limits)
    if fmt not in FORMATS:
        raise ImportFormatError(f"unknown format '{fmt}'; expected one of {', '.join(FORMATS)}")
    if _is_csv(path):
        if fmt != "generic":
            raise ImportFormatError(
                f"{Path(path).name}: CSV files can only be imported as 'generic', not '{fmt}'"
            )
        return _guard(path, limited(_iter_csv_records(path, limits), limits))
    return _guard(path, limited(_iter_json_records(path, _PARSERS[fmt], limits), limits))
