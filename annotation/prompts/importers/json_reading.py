"""Bounded reading of JSON in import files; plain Python, no Django.

One JSONL line is decoded and checked (``decode_line``), and a JSON array is streamed
element by element (``iter_array``, never ``json.load`` of the whole file), holding at most
one element (``Limits.max_line`` characters) plus one piece at a time. Each value is checked
for nesting deeper than ``Limits.max_depth`` (without recursion; the decoder's own
RecursionError on very deep input is reported the same way) and for NUL characters, which
PostgreSQL cannot store; such a value is a bad record, while a broken array is a whole-file
error (ImportFormatError).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, TextIO

from annotation.prompts.importers.reading import CHUNK, Limits, line_too_long
from annotation.prompts.importers.records import ImportFormatError, ImportLimitError, RecordError


def nested_too_deep(cap: int) -> str:
    return f"nested more than {cap} levels deep (the cap IMPORT_MAX_JSON_DEPTH)"


NUL_REASON = "contains a NUL character (\\u0000), which cannot be stored"


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
