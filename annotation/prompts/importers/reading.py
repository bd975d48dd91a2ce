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
``IMPORT_MAX_DECOMPRESSED_BYTES``. The JSON checks (nesting, NUL characters) and the
streaming of arrays are in ``json_reading``.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from annotation.prompts.importers.records import ImportLimitError, RecordError

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


# --- bytes -------------------------------------------------------------------------------


class _CappedReader(io.RawIOBase):
    """A raw stream that raises ImportLimitError once more than ``cap`` bytes were read
    from ``raw``. It asks ``raw`` for at most one byte past the cap, so a decompressing
    ``raw`` never inflates more than that."""

    def __init__(self, raw: io.BufferedIOBase, cap: int) -> None:
        super().__init__()
        self._raw = raw
        self._cap = cap
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        allowed = self._cap - self.count + 1
        n = self._raw.readinto(view[:allowed]) or 0
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
    raw: io.BufferedIOBase = gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")  # noqa: SIM115
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
