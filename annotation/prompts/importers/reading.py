"""Bounded reading of import files; plain Python, no Django.

Every read here is capped so that no file, however built, can make the process hold more
than about one record's worth of text:

- the bytes of data read (after decompression of a ``.gz``): reading stops one byte past
  ``Limits.max_bytes``, so a gzip bomb is refused after that many bytes, never inflated
  whole;
- the length of one line (JSONL), one CSV record or one element of a JSON array: lines
  are read in pieces of at most ``max_line`` characters; a longer line is reported as a
  bad record and the rest of it is read in small pieces and dropped;
- JSON nesting (``max_depth``), checked without recursion; the decoder's own
  RecursionError on very deep input is caught and reported the same way;
- JSON arrays are streamed element by element (never ``json.load`` of the whole file);
- the number of records and of bad records (``max_records``, ``max_errors``): past either
  the whole file is refused at once.

A cap that is passed raises ImportLimitError (or, for one line or record, yields a
RecordError) whose message names the setting that holds the cap, e.g.
``IMPORT_MAX_DECOMPRESSED_BYTES``.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, TextIO

from annotation.prompts.importers.records import ImportFormatError, ImportLimitError, RecordError

StrPath = str | os.PathLike[str]

# Pieces read at a time: the text buffer of a JSON array and the pieces of an overlong line.
CHUNK = 64 * 1024


@dataclass(frozen=True)
class Limits:
    """The caps on one import; the service fills them from the ``IMPORT_*`` settings named
    in each field's comment (the defaults here are those settings' defaults)."""

    max_bytes: int = 1024**3  # IMPORT_MAX_DECOMPRESSED_BYTES: data read, after decompression
    max_line: int = 8 * 1024**2  # IMPORT_MAX_LINE_LENGTH: characters of one line / record
    max_depth: int = 64  # IMPORT_MAX_JSON_DEPTH: nesting of one record
    max_records: int = 1_000_000  # IMPORT_MAX_RECORDS
    max_errors: int = 1_000  # IMPORT_MAX_ERRORS: bad records before reading stops

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_line", "max_depth", "max_records", "max_errors"):
            if getattr(self, name) < 1:
                raise ValueError(f"Limits.{name} must be at least 1")


def describe_size(n: int) -> str:
    """``1 GiB``, ``8 MiB``, ``1.5 KiB``, ``900 bytes``."""
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value.is_integer() else f"{value:.1f} {unit}"
    return f"{n:,} bytes"


def too_much_data(cap: int) -> str:
    return (
        f"the file holds more than {describe_size(cap)} of data once decompressed "
        "(the cap IMPORT_MAX_DECOMPRESSED_BYTES)"
    )


def line_too_long(cap: int) -> str:
    return f"longer than {cap:,} characters (the cap IMPORT_MAX_LINE_LENGTH)"


def nested_too_deep(cap: int) -> str:
    return f"nested more than {cap} levels deep (the cap IMPORT_MAX_JSON_DEPTH)"


NUL_REASON = "contains a NUL character (\\u0000), which cannot be stored"


# --- bytes -------------------------------------------------------------------------------


class _CappedReader(io.RawIOBase):
    """A raw stream that raises ImportLimitError once more than ``cap`` bytes were read
    from ``raw``. It asks ``raw`` for at most one byte past the cap, so a decompressing
    ``raw`` never inflates more than that."""

    def __init__(self, raw: BinaryIO, cap: int) -> None:
        super().__init__()
        self._raw = raw
        self._cap = cap
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        allowed = self._cap - self.count + 1
        n = self._raw.readinto(view[:allowed]) or 0  # type: ignore[attr-defined]
        self.count += n
        if self.count > self._cap:
            raise ImportLimitError(too_much_data(self._cap))
        return n

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


def is_gzip(path: StrPath) -> bool:
    return str(path).lower().endswith(".gz")


def open_binary(path: StrPath, limits: Limits) -> io.BufferedReader:
    """``path``'s data (decompressed when it ends in ``.gz``), capped at ``limits.max_bytes``."""
    raw: BinaryIO = gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")  # noqa: SIM115
    return io.BufferedReader(_CappedReader(raw, limits.max_bytes), buffer_size=CHUNK)


def open_text(path: StrPath, *, newline: str | None = None, limits: Limits | None = None) -> TextIO:
    """Open ``path`` as UTF-8 text, decompressing ``.gz`` transparently, with the byte cap
    of ``limits`` (the defaults when omitted).

    A leading byte-order mark is ignored (``utf-8-sig``), as spreadsheet exports have one.
    """
    binary = open_binary(path, limits or Limits())
    return io.TextIOWrapper(binary, encoding="utf-8-sig", newline=newline)


def holds_at_most(path: StrPath, size: int) -> bool:
    """Whether ``path`` holds at most ``size`` bytes of data once decompressed; reads at most
    ``size + 1`` of them. An unreadable file counts as small (reading it reports why)."""
    try:
        if not is_gzip(path):
            return os.path.getsize(path) <= size
        with open_binary(path, Limits(max_bytes=size)) as handle:
            while handle.read(CHUNK):
                pass
    except ImportLimitError:
        return False
    except (OSError, EOFError, ValueError):
        return True
    return True


# --- lines -------------------------------------------------------------------------------


def read_line(handle: TextIO, max_chars: int) -> tuple[str, bool]:
    """The next line (``""`` at the end) and whether it was cut: a line longer than
    ``max_chars`` (not counting its line break) comes back as its first ``max_chars + 1``
    characters with ``True``; ``skip_line`` then drops the rest of it."""
    line = handle.readline(max_chars + 1)
    return line, len(line) > max_chars and not line.endswith(("\n", "\r"))


def skip_line(handle: TextIO) -> None:
    """Read the rest of the current line in pieces and drop it."""
    while True:
        piece = handle.readline(CHUNK)
        if not piece or piece.endswith(("\n", "\r")):
            return


def iter_lines(handle: TextIO, max_chars: int) -> Iterator[tuple[int, str | None]]:
    """(line number, text) per line; the text is None for a line over ``max_chars``, whose
    rest is skipped only if iteration goes on (detection stops at once)."""
    line_no = 0
    while True:
        line, cut = read_line(handle, max_chars)
        if not line:
            return
        line_no += 1
        yield line_no, None if cut else line
        if cut:
            skip_line(handle)


class LineTooLong(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class BoundedLines:
    """The lines of a CSV file for ``csv.reader``. A line, or a record spanning several
    lines (a quoted cell with line breaks), longer than ``max_chars`` raises LineTooLong
    (the rest of a cut line is dropped on the next read); call ``start_record`` before
    each record."""

    def __init__(self, handle: TextIO, max_chars: int) -> None:
        self._handle = handle
        self.max_chars = max_chars
        self._record = 0
        self._cut = False
        self.line_no = 0

    def __iter__(self) -> BoundedLines:
        return self

    def start_record(self) -> None:
        self._record = 0

    def __next__(self) -> str:
        if self._cut:
            self._cut = False
            skip_line(self._handle)
        line, self._cut = read_line(self._handle, self.max_chars)
        if not line:
            raise StopIteration
        self.line_no += 1
        self._record += len(line)
        if self._cut or self._record > self.max_chars + 2:  # + a full line's line break
            raise LineTooLong(self.line_no)
        return line


# --- JSON values -------------------------------------------------------------------------


def reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid number (JSON has no NaN or Infinity)")


def check_value(value: Any, text: str, max_depth: int) -> None:
    """Raise ValueError when ``value`` (decoded from ``text``) is nested deeper than
    ``max_depth`` or holds a NUL character (PostgreSQL cannot store one). Walks the value
    only when ``text`` could hold either, without recursion."""
    deep = text.count("[") + text.count("{") > max_depth
    nul = "\\u0000" in text
    if not (deep or nul):
        return
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ValueError(NUL_REASON)
            continue
        if isinstance(item, dict):
            children: Any = item.values()
            if nul and any("\x00" in key for key in item):
                raise ValueError(NUL_REASON)
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            raise ValueError(nested_too_deep(max_depth))
        stack.extend((child, depth + 1) for child in children)


def decode_line(line: str, max_depth: int) -> Any:
    """One JSONL line → its value; ValueError with the reason for a bad line."""
    if "\x00" in line:
        raise ValueError(NUL_REASON)
    try:
        # Without its line break, so that an error at the end of the line is placed there
        # (not at column 1 of a next line).
        value = json.loads(line.rstrip("\r\n"), parse_constant=reject_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise ValueError(nested_too_deep(max_depth)) from None
    check_value(value, line, max_depth)
    return value


_SPACE = re.compile(r"[ \t\n\r]*")


class _ArrayReader:
    """A JSON array read element by element from a text stream: a buffer of at most one
    element (``max_line`` characters) plus one piece is held at a time."""

    def __init__(self, handle: TextIO, limits: Limits) -> None:
        self._handle = handle
        self._limits = limits
        self._decoder = json.JSONDecoder(parse_constant=reject_constant)
        self.buf = ""
        self.pos = 0
        self.eof = False

    def _more(self, size: int | None = None) -> bool:
        """Drop what was consumed and append up to ``size`` characters (a piece by
        default); False at the end."""
        if self.eof:
            return False
        piece = self._handle.read(size or CHUNK)
        if not piece:
            self.eof = True
            return False
        self.buf = self.buf[self.pos :] + piece
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next non-blank character ("" at the end), with ``pos`` on it."""
        while True:
            match = _SPACE.match(self.buf, self.pos)
            self.pos = match.end() if match else self.pos
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return ""

    def _incomplete(self, exc: json.JSONDecodeError) -> bool:
        """The decoder stopped because the buffer ends inside the element."""
        return exc.pos >= len(self.buf) - 8 or exc.msg.startswith("Unterminated string")

    def element(self, index: int) -> tuple[Any, str]:
        """The element at ``pos`` and its text; reads more as needed, doubling each time,
        so an element costs at most about twice its length to decode."""
        while True:
            try:
                value, end = self._decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if self.eof or not self._incomplete(exc):
                    raise ImportFormatError(
                        f"not a valid JSON array: record {index}: {exc.msg}"
                    ) from None
            except RecursionError:
                raise ImportLimitError(
                    f"record {index} of the array is {nested_too_deep(self._limits.max_depth)}"
                ) from None
            except ValueError as exc:  # NaN, Infinity, an integer of thousands of digits
                raise ImportFormatError(f"not a valid JSON array: record {index}: {exc}") from None
            else:
                if self.eof or self._complete(value, end):
                    self._check_length(end - self.pos, index)
                    text = self.buf[self.pos : end]
                    self.pos = end
                    return value, text
            held = len(self.buf) - self.pos
            self._check_length(held, index)
            self._more(max(CHUNK, held))  # double what is held

    def _complete(self, value: Any, end: int) -> bool:
        """A value that ends inside the buffer is whole, unless it is a number whose next
        character could go on (``3`` of ``3.25`` cut after the ``3``)."""
        if end >= len(self.buf):
            return False
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return not number or self.buf[end] in " \t\n\r,]"

    def _check_length(self, length: int, index: int) -> None:
        if length > self._limits.max_line:
            raise ImportLimitError(
                f"record {index} of the array is {line_too_long(self._limits.max_line)}"
            )


def iter_array(handle: TextIO, limits: Limits) -> Iterator[tuple[int, Any] | RecordError]:
    """(1-based index, value) per element of the JSON array in ``handle``, or a RecordError
    for an element that is nested too deeply or holds a NUL. A broken array (a missing
    comma or bracket, text after the end) raises ImportFormatError: past a syntax error
    there is no telling where the next element starts."""
    reader = _ArrayReader(handle, limits)
    if reader.peek() != "[":
        raise ImportFormatError("not a JSON array")
    reader.pos += 1
    if reader.peek() == "]":
        reader.pos += 1
    else:
        index = 0
        while True:
            index += 1
            if reader.peek() == "":
                raise ImportFormatError(
                    f"not a valid JSON array: the file ends where record {index} should be"
                )
            value, text = reader.element(index)
            try:
                check_value(value, text, limits.max_depth)
            except ValueError as exc:
                yield RecordError(index, str(exc))
            else:
                yield index, value
            after = reader.peek()
            if after == ",":
                reader.pos += 1
                continue
            if after == "]":
                reader.pos += 1
                break
            if after == "":
                raise ImportFormatError(
                    f"not a valid JSON array: the file ends after record {index} "
                    "without a closing ']'"
                )
            raise ImportFormatError(
                f"not a valid JSON array: expected ',' or ']' after record {index}, found {after!r}"
            )
    if reader.peek() != "":
        raise ImportFormatError("not a valid JSON array: there is text after its closing ']'")


# --- counts ------------------------------------------------------------------------------


def limited(items: Iterator[Any], limits: Limits) -> Iterator[Any]:
    """``items`` (records and RecordErrors), refused past ``max_records`` records or
    ``max_errors`` bad ones: reading stops there."""
    errors = 0
    for records, item in enumerate(items, start=1):
        if records > limits.max_records:
            raise ImportLimitError(
                f"the file has more than {limits.max_records:,} records "
                "(the cap IMPORT_MAX_RECORDS)"
            )
        if isinstance(item, RecordError):
            errors += 1
            if errors > limits.max_errors:
                raise ImportLimitError(
                    f"more than {limits.max_errors:,} bad records (the cap IMPORT_MAX_ERRORS); "
                    f"reading stopped at line {item.line}"
                )
        yield item
