"""Where an export's rows go, one split at a time: a JSONL file written line by line
(optionally with a JSON object's members spread into each line), or a Parquet file written
one row group per full buffer with the fixed options of ``PARQUET_OPTIONS``. Each sink
writes to a temporary path it claims, and is closed once complete or aborted on failure.

pyarrow is imported inside the functions, never at module import.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annotation.prompts.importers.parsers import RUBRIC_ITEMS_KEY
from scoring.datasets.row_checks import _got

if TYPE_CHECKING:
    import pyarrow

# One encoder for every line (json.dumps with options builds a new one per call).
_ENCODE = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
).encode
_CHUNK = 1 << 20

# Every option that shapes the bytes, spelt out so a change of pyarrow's defaults cannot
# change them silently. zstd: smaller than snappy at similar speed and read by every
# current Parquet reader (pyarrow, pandas, polars, DuckDB, Spark, `datasets`); the level is
# fixed because the bytes depend on it. Statistics stay on: they are computed from the data
# alone (same rows, same min/max) and let readers skip row groups. The page index and page
# checksums stay off (the pyarrow defaults); the Arrow schema is stored so nested and string
# types read back exactly as written.
PARQUET_OPTIONS: dict[str, Any] = {
    "version": "2.6",
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "dictionary_pagesize_limit": 1 << 20,
    "write_statistics": True,
    "data_page_version": "1.0",
    "data_page_size": 1 << 20,
    "write_batch_size": 1024,
    "use_compliant_nested_type": True,
    "store_schema": True,
    "write_page_index": False,
    "write_page_checksum": False,
    "use_content_defined_chunking": False,
}


class _Sink:
    def add(self, row: dict[str, Any], number: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError


class _JsonlSink(_Sink):
    def __init__(self, path: Path, split: str, spread: tuple[str, str] | None = None) -> None:
        self.split = split
        self.spread = spread
        self.file = open(path, "xb", buffering=_CHUNK)  # noqa: SIM115 (closed in close/abort)

    def add(self, row: dict[str, Any], number: int) -> None:
        if self.spread is not None:
            row = self._spread(row, number)
        try:
            line = _ENCODE(row)
        except (TypeError, ValueError) as e:
            field = next((k for k in row if not _dumps_ok(row[k])), "?")
            raise ValueError(
                f"Split {self.split!r}, row {number}: field {field!r}: not JSON-serialisable: {e}"
            ) from None
        self.file.write(line.encode("utf-8"))
        self.file.write(b"\n")

    def _spread(self, row: dict[str, Any], number: int) -> dict[str, Any]:
        assert self.spread is not None
        field, items_field = self.spread
        text = row[field]
        try:
            members = json.loads(text) if text else {}
        except ValueError:
            members = None
        if not isinstance(members, dict):
            raise ValueError(
                f"Split {self.split!r}, row {number}: field {field!r} must hold a JSON "
                f"object, got {_got(text)}"
            )
        out = {k: v for k, v in row.items() if k != field}
        extras, items = members.get(RUBRIC_ITEMS_KEY), row.get(items_field)
        if isinstance(extras, list) and isinstance(items, list) and len(extras) == len(items):
            members = {k: v for k, v in members.items() if k != RUBRIC_ITEMS_KEY}
            out[items_field] = [
                {**item, **{k: v for k, v in extra.items() if k not in item}}
                if isinstance(extra, dict)
                else item
                for item, extra in zip(items, extras, strict=True)
            ]
        kept = {}
        for key, value in members.items():
            if key not in row:
                out[key] = value
            elif row[key] != value or key == field:
                kept[key] = value
        if kept:
            out[field] = kept
        return out

    def close(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def abort(self) -> None:
        self.file.close()


class _ParquetSink(_Sink):
    """At most ``limit`` rows buffered; each full buffer becomes one row group."""

    def __init__(self, path: Path, split: str, schema: pyarrow.Schema, limit: int) -> None:
        self.path, self.split, self.schema, self.limit = path, split, schema, limit
        self.buffer: list[dict[str, Any]] = []
        self.first = 1  # number of the buffer's first row in the split
        self.writer: Any = None
        open(path, "xb").close()  # claim the name; the writer truncates it

    def add(self, row: dict[str, Any], number: int) -> None:
        self.buffer.append(row)
        if len(self.buffer) >= self.limit:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.buffer:
            return
        try:
            table = pa.Table.from_pylist(self.buffer, schema=self.schema)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as e:
            last = self.first + len(self.buffer) - 1
            raise ValueError(f"Split {self.split!r}, rows {self.first}–{last}: {e}") from None
        if self.writer is None:
            self.writer = pq.ParquetWriter(str(self.path), self.schema, **PARQUET_OPTIONS)
        self.writer.write_table(table, row_group_size=len(self.buffer))
        self.first += len(self.buffer)
        self.buffer = []

    def close(self) -> None:
        self._flush()
        self.writer.close()
        with open(self.path, "rb") as f:
            os.fsync(f.fileno())

    def abort(self) -> None:
        self.buffer = []
        if self.writer is not None:
            # The file is removed next; the first error is the one to report.
            with contextlib.suppress(Exception):
                self.writer.close()


def _dumps_ok(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True
