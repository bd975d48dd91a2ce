"""Format detection and streaming record iteration for import files.

JSONL and CSV files (optionally gzip-compressed) are read line by line, so a file of
any size is processed in constant memory. A JSON *array* file (first non-blank character
``[``) is the one exception: it is loaded whole with ``json.load``.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import zlib
from collections.abc import Iterator, Mapping
from contextlib import closing
from pathlib import Path
from typing import Any, TextIO

from .hh_rlhf import parse_hh_rlhf
from .parsers import (
    Parser,
    parse_csv_row,
    parse_generic,
    parse_healthbench,
    parse_rar,
    parse_researchqa,
    parse_trl,
)
from .records import ImportFormatError, ParsedRecord, RecordError
from .validation import InvalidRecord

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


def open_text(path: StrPath, *, newline: str | None = None) -> TextIO:
    """Open ``path`` as UTF-8 text, decompressing ``.gz`` transparently.

    A leading byte-order mark is ignored (``utf-8-sig``), as spreadsheet exports have one.
    """
    if str(path).lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline=newline)
    return open(path, encoding="utf-8-sig", newline=newline)  # noqa: SIM115


def _is_csv(path: StrPath) -> bool:
    return str(path).lower().endswith((".csv", ".csv.gz"))


def _first_char(path: StrPath) -> str:
    """The first non-whitespace character of the file, or "" when it is blank."""
    with open_text(path) as handle:
        while chunk := handle.read(4096):
            stripped = chunk.lstrip()
            if stripped:
                return stripped[0]
    return ""


# Cells and lines may hold long responses; the csv module's default cap is 128 KiB.
csv.field_size_limit(64 * 1024 * 1024)

_JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid number (JSON has no NaN or Infinity)")


def _decode_line(line: str) -> Any:
    if "\\u0000" in line or "\x00" in line:
        raise ValueError("contains a NUL character (\\u0000), which cannot be stored")
    return json.loads(line, parse_constant=_reject_constant)


def _is_json_array(path: StrPath) -> bool:
    """A whole-file JSON array, as opposed to JSONL whose first record is a list."""
    return not str(path).lower().endswith(_JSONL_SUFFIXES) and _first_char(path) == "["


def _iter_objects(path: StrPath) -> Iterator[tuple[int, Any] | RecordError]:
    """(line, decoded value) per record, or a RecordError for a line that is not JSON."""
    if _is_json_array(path):
        with open_text(path) as handle:
            try:
                items = json.load(handle, parse_constant=_reject_constant)
            except ValueError as exc:
                if not isinstance(exc, json.JSONDecodeError):
                    raise ImportFormatError(f"{Path(path).name}: {exc}") from exc
                raise ImportFormatError(
                    f"{Path(path).name} is not a valid JSON array: "
                    f"{exc.msg} at line {exc.lineno} column {exc.colno}"
                ) from exc
        if not isinstance(items, list):
            raise ImportFormatError(f"{Path(path).name} is not a JSON array")
        for index, item in enumerate(items, start=1):
            if "\\u0000" in json.dumps(item):
                yield RecordError(
                    index, "contains a NUL character (\\u0000), which cannot be stored"
                )
            else:
                yield index, item
        return
    with open_text(path) as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield line_no, _decode_line(line)
            except json.JSONDecodeError as exc:
                yield RecordError(line_no, f"invalid JSON: {exc.msg} at column {exc.colno}")
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


def _iter_json_records(path: StrPath, parser: Parser) -> Iterator[Item]:
    for item in _iter_objects(path):
        yield item if isinstance(item, RecordError) else _apply(parser, item[1], item[0])


def _csv_reader(handle: TextIO, path: StrPath) -> csv.DictReader[str]:
    reader = csv.DictReader(handle)
    fields = [name.strip() for name in reader.fieldnames or []]
    if "prompt" not in fields:
        found = ", ".join(fields) or "no header"
        raise ImportFormatError(f"{Path(path).name}: CSV needs a 'prompt' column (found: {found})")
    reader.fieldnames = fields
    return reader


def _iter_csv_records(path: StrPath) -> Iterator[Item]:
    with open_text(path, newline="") as handle:
        reader = _csv_reader(handle, path)
        try:
            previous_end = reader.line_num
            for row in reader:
                start = previous_end + 1  # a quoted cell may span several lines
                previous_end = reader.line_num
                if any("\x00" in (v or "") for v in row.values() if isinstance(v, str)):
                    yield RecordError(start, "contains a NUL character, which cannot be stored")
                    continue
                try:
                    yield parse_csv_row(row, start)
                except InvalidRecord as exc:
                    yield RecordError(start, str(exc))
        except csv.Error as exc:
            raise ImportFormatError(
                f"{Path(path).name}: unreadable CSV at line {reader.line_num}: {exc}"
            ) from exc


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


def detect_format(path: StrPath) -> str:
    """Guess the format of ``path`` from its first record (a CSV is always "generic")."""
    name = Path(path).name
    try:
        if _is_csv(path):
            with open_text(path, newline="") as handle:
                _csv_reader(handle, path)
            return "generic"
        with closing(_iter_objects(path)) as items:
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


def iter_records(path: StrPath, fmt: str | None = None) -> Iterator[Item]:
    """Yield a ParsedRecord or a RecordError for every non-blank record of ``path``.

    ``fmt`` is one of FORMATS (detected when omitted). A bad record yields a RecordError
    and iteration goes on, so every bad line is reported. Whole-file problems (unknown
    format, unreadable file, a CSV without a ``prompt`` column, a broken JSON array)
    raise ImportFormatError: the format check happens at call time, read errors while
    iterating.
    """
    if fmt is None:
        fmt = detect_format(path)
    if fmt not in FORMATS:
        raise ImportFormatError(f"unknown format '{fmt}'; expected one of {', '.join(FORMATS)}")
    if _is_csv(path):
        if fmt != "generic":
            raise ImportFormatError(
                f"{Path(path).name}: CSV files can only be imported as 'generic', not '{fmt}'"
            )
        return _guard(path, _iter_csv_records(path))
    return _guard(path, _iter_json_records(path, _PARSERS[fmt]))
