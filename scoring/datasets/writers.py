"""Rows to files: JSONL, Parquet, or a Hugging Face datasets folder (Parquet and a card).

One file per split that has rows (``train.jsonl``, ``validation.parquet``, …), written
under a hidden temporary name in the export directory and renamed only once every file is
complete, so a final name never holds a half-written file. Memory is bounded whatever the
number of rows: JSONL is written line by line, Parquet buffers at most ``row_group_rows``
rows per split before writing them as one row group.

Reproducible to the byte: the same rows in the same order give the same files. JSONL lines
are ``json.dumps`` with sorted keys and compact separators; Parquet is written with the
fixed options of ``PARQUET_OPTIONS`` (Parquet stores no timestamps; its ``created_by``
names the pyarrow version, which ``requirements.txt`` pins).

pyarrow is imported inside the functions, never at module import: the web process imports
``scoring.datasets`` modules and must not pay for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annotation.prompts.importers.parsers import RUBRIC_ITEMS_KEY
from scoring.datasets.card import EXTENSIONS, front_matter
from scoring.datasets.options import FORMATS, SPLITS

if TYPE_CHECKING:
    import pyarrow

CARD_NAME = "README.md"
# One encoder for every line (json.dumps with options builds a new one per call).
_ENCODE = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
).encode
PROGRESS_EVERY = 1000
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


@dataclass(frozen=True)
class FileInfo:
    name: str  # path relative to the export directory: "train.parquet", "README.md"
    sha256: str
    bytes: int
    rows: int  # 0 for the card


def write_export(
    directory: Path,
    rows: Iterable[tuple[str, dict[str, Any]]],
    schema: pyarrow.Schema,
    fmt: str,
    *,
    card: Callable[[dict[str, int]], str] | None = None,
    progress: Callable[[int], None] | None = None,
    row_group_rows: int = 10_000,
    spread: tuple[str, str] | None = None,
) -> list[FileInfo]:
    """Write ``rows`` (``(split, row)`` pairs, splits in any order, interleaved) into
    ``directory`` as ``fmt`` and return the files written: the split files in the order of
    ``SPLITS``, then ``README.md`` if any.

    Every row is a dict with exactly the schema's fields, at every level of nesting (a
    struct value is a dict with exactly the struct's fields), each value of the field's type:
    ``str`` for strings, ``int`` (not ``bool``) for integers, a finite ``int`` or ``float``
    for floating point, ``bool`` for booleans, a list or tuple for lists, ``None`` where the
    field is nullable. Anything else is a ``ValueError`` naming the split, the row's 1-based
    number in that split and the field path (``reward_model.rubrics[2].points``), raised
    before that row is written; then, as on any other error (the ``rows`` iterator's
    included), every temporary file is removed and nothing is left under a final name.

    ``card(counts)`` renders ``README.md`` from ``{split: rows}`` (splits with rows only, in
    ``SPLITS`` order); "hf" always writes one (a minimal card with the ``configs`` that
    ``datasets`` needs when ``card`` is None), "jsonl" and "parquet" only when given.
    ``progress(n)`` is called every ``PROGRESS_EVERY`` rows taken and once more with the
    total after the files are in place.

    ``spread`` names a top-level string field holding a JSON object (a source record's
    fields that have no column of their own). Parquet keeps it as that string column; JSONL,
    whose lines need no fixed schema, writes the object's members as top-level fields of
    the line instead, as the source record had them. A member named like a field of the
    row is left out if it holds the row's value, and otherwise stays under ``spread`` (as
    an object), so nothing of the row is overridden and nothing of the object is lost.
    ``spread`` is (that field, the row's list of rubric items): the object's ``rubric_items``
    (one object per rubric item, aligned with that list) go back into the items themselves,
    as the source file had them (an item's own fields win).

    The directory is created if missing (and removed again on failure if it was created
    here and is empty); a file already holding one of the names this export
    could write is refused (``FileExistsError``): snapshots are never overwritten. Crashed
    runs can leave hidden ``.*.part`` files: list an export by the returned ``FileInfo``s,
    not by the directory.
    """
    if fmt not in FORMATS:
        raise ValueError(f"Unknown format {fmt!r}: one of {', '.join(FORMATS)}.")
    if row_group_rows < 1:
        raise ValueError("row_group_rows must be at least 1.")
    if spread is not None and not _is_string_field(schema, spread[0]):
        raise ValueError(f"spread: {spread[0]!r} is not a top-level string field of the schema.")
    directory = Path(directory)
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    ext = EXTENSIONS[fmt]
    with_card = card is not None or fmt == "hf"
    names = [f"{s}.{ext}" for s in SPLITS] + ([CARD_NAME] if with_card else [])
    taken = [n for n in names if (directory / n).exists()]
    if taken:
        raise FileExistsError(f"{directory} already holds {', '.join(taken)}.")

    check = _row_checker(schema)
    counts = dict.fromkeys(SPLITS, 0)
    sinks: dict[str, _Sink] = {}
    temps: dict[str, Path] = {}  # final name -> temporary path, in the order written
    renamed: list[Path] = []
    total = 0
    try:
        for split, row in rows:
            if split not in counts:
                raise ValueError(f"Unknown split {split!r}: one of {', '.join(SPLITS)}.")
            number = counts[split] + 1
            try:
                check(row)
            except _Invalid as e:
                raise ValueError(f"Split {split!r}, row {number}: {e.describe()}") from None
            sink = sinks.get(split)
            if sink is None:
                name = f"{split}.{ext}"
                temps[name] = _temp_path(directory, name)
                sink = sinks[split] = (
                    _JsonlSink(temps[name], split, spread)
                    if fmt == "jsonl"
                    else _ParquetSink(temps[name], split, schema, row_group_rows)
                )
            sink.add(row, number)
            counts[split] = number
            total += 1
            if progress is not None and total % PROGRESS_EVERY == 0:
                progress(total)
        for sink in sinks.values():
            sink.close()

        present = {s: counts[s] for s in SPLITS if counts[s]}
        if with_card:
            text = (
                card(dict(present)) if card is not None else front_matter(fmt=fmt, counts=present)
            )
            temps[CARD_NAME] = _temp_path(directory, CARD_NAME)
            with open(temps[CARD_NAME], "xb") as f:
                f.write(text.encode("utf-8"))

        files = []
        for name in sorted(temps, key=names.index):
            digest, size = _sha256_and_size(temps[name])
            rows_in = present.get(name.removesuffix(f".{ext}"), 0) if name != CARD_NAME else 0
            files.append(FileInfo(name=name, sha256=digest, bytes=size, rows=rows_in))
        for info in files:
            final = directory / info.name
            os.replace(temps[info.name], final)
            renamed.append(final)
        _fsync_directory(directory)
    except BaseException:
        for sink in sinks.values():
            sink.abort()
        for path in [*temps.values(), *renamed]:
            path.unlink(missing_ok=True)
        if created:
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise
    if progress is not None:
        progress(total)
    return files


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


def _is_string_field(schema: pyarrow.Schema, name: str) -> bool:
    import pyarrow.types as types

    index = schema.get_field_index(name)
    return index >= 0 and types.is_string(schema.field(index).type)


def _temp_path(directory: Path, name: str) -> Path:
    return directory / f".{name}.{uuid.uuid4().hex}.part"


def _sha256_and_size(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _fsync_directory(directory: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _dumps_ok(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


# Row validation. pyarrow's conversion is lenient (1.5 into an int64 column becomes 1, "ab"
# into list<string> becomes ["a", "b"], a missing struct field becomes null), and JSONL would
# keep what Parquet silently changed; so rows are checked against the schema first, by
# checkers compiled once per schema. A checker returns None or raises _Invalid, whose path
# is filled in on the way out (no cost while rows are valid).


class _Invalid(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str | int] = []  # innermost first

    def describe(self) -> str:
        where = ""
        for part in reversed(self.path):
            where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else part)
        return f"field {where!r} {self.message}" if where else self.message


_Check = Callable[[Any], None]


def _row_checker(schema: pyarrow.Schema) -> _Check:
    import pyarrow as pa

    struct = _checker(pa.struct(list(schema)), nullable=False)
    fast = _fast_checker(pa.struct(list(schema)))

    def check(row: Any) -> None:
        if fast is not None and fast(row):
            return
        if not isinstance(row, dict):
            raise _Invalid(f"is a {type(row).__name__}, not a dict")
        struct(row)

    return check


def _fast_checker(t: pyarrow.DataType) -> Callable[[Any], bool] | None:
    """A check of the common case, generated as one flat function: True when the row is
    valid, built of exact builtin types (dict, list, str, int, float, bool); False sends it
    to the full checker, which decides and names what is wrong. None for schemas with
    types it does not cover."""
    lines = ["def fast(row):"]
    constants: dict[str, Any] = {}
    names = iter(range(1 << 30))

    def emit(t: Any, value: str, nullable: bool, indent: int) -> bool:  # noqa: C901
        import pyarrow.types as types

        pad = "    " * indent
        if nullable:
            lines.append(f"{pad}if {value} is not None:")
            pad += "    "
            indent += 1
        if types.is_struct(t):
            keys = f"K{next(names)}"
            constants[keys] = frozenset(t.field(i).name for i in range(t.num_fields))
            lines.append(f"{pad}if type({value}) is not dict or {value}.keys() != {keys}:")
            lines.append(f"{pad}    return False")
            for i in range(t.num_fields):
                f = t.field(i)
                child = f"v{next(names)}"
                lines.append(f"{pad}{child} = {value}[{f.name!r}]")
                if not emit(f.type, child, f.nullable, indent):
                    return False
            return True
        if types.is_list(t) or types.is_large_list(t):
            item = f"v{next(names)}"
            lines.append(f"{pad}if type({value}) is not list:")
            lines.append(f"{pad}    return False")
            lines.append(f"{pad}for {item} in {value}:")
            return emit(t.value_type, item, t.value_field.nullable, indent + 1)
        if types.is_string(t) or types.is_large_string(t) or types.is_string_view(t):
            lines.append(f"{pad}if type({value}) is not str:")
        elif types.is_boolean(t):
            lines.append(f"{pad}if type({value}) is not bool:")
        elif types.is_integer(t) and types.is_signed_integer(t):
            bound = 2 ** (t.bit_width - 1)
            lines.append(f"{pad}if type({value}) is not int or not {-bound} <= {value} < {bound}:")
        elif types.is_floating(t):  # an int, or a finite float (x - x is nan for inf and nan)
            lines.append(
                f"{pad}if type({value}) is not int and "
                f"(type({value}) is not float or {value} - {value} != 0.0):"
            )
        else:
            return False
        lines.append(f"{pad}    return False")
        return True

    if not emit(t, "row", False, 1):
        return None
    lines.append("    return True")
    namespace = dict(constants)
    exec(compile("\n".join(lines), "<export row check>", "exec"), namespace)  # noqa: S102
    return namespace["fast"]


def _got(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _checker(t: pyarrow.DataType, nullable: bool) -> _Check:  # noqa: C901
    import pyarrow as pa
    import pyarrow.types as types

    def null(_: Any) -> None:
        if not nullable:
            raise _Invalid("is null but the schema says not null")

    if types.is_struct(t):
        fields = [t.field(i) for i in range(t.num_fields)]
        keys = frozenset(f.name for f in fields)
        children = [(f.name, _checker(f.type, f.nullable)) for f in fields]

        def check_struct(value: Any) -> None:
            if value is None:
                return null(value)
            if not isinstance(value, dict):
                raise _Invalid(f"expected a dict ({t}), got {_got(value)}")
            if value.keys() != keys:
                missing = sorted(keys - value.keys())
                if missing:
                    e = _Invalid("is missing")
                    e.path.append(missing[0])
                else:
                    e = _Invalid("is not in the schema")
                    e.path.append(sorted(map(str, value.keys() - keys))[0])
                raise e
            for name, child in children:
                try:
                    child(value[name])
                except _Invalid as e:
                    e.path.append(name)
                    raise

        return check_struct

    if types.is_list(t) or types.is_large_list(t) or types.is_fixed_size_list(t):
        item = _checker(t.value_type, t.value_field.nullable)
        size = t.list_size if types.is_fixed_size_list(t) else None

        def check_list(value: Any) -> None:
            if value is None:
                return null(value)
            if not isinstance(value, list | tuple):
                raise _Invalid(f"expected a list ({t}), got {_got(value)}")
            if size is not None and len(value) != size:
                raise _Invalid(f"expected {size} items, got {len(value)}")
            for i, v in enumerate(value):
                try:
                    item(v)
                except _Invalid as e:
                    e.path.append(i)
                    raise

        return check_list

    if types.is_string(t) or types.is_large_string(t) or types.is_string_view(t):

        def check_string(value: Any) -> None:
            if not isinstance(value, str):
                if value is None:
                    return null(value)
                raise _Invalid(f"expected a string, got {_got(value)}")

        return check_string

    if types.is_boolean(t):

        def check_bool(value: Any) -> None:
            if not isinstance(value, bool):
                if value is None:
                    return null(value)
                raise _Invalid(f"expected a bool, got {_got(value)}")

        return check_bool

    if types.is_integer(t):
        lo, hi = (
            (-(2 ** (t.bit_width - 1)), 2 ** (t.bit_width - 1) - 1)
            if types.is_signed_integer(t)
            else (0, 2**t.bit_width - 1)
        )

        def check_int(value: Any) -> None:
            if not isinstance(value, int) or isinstance(value, bool):
                if value is None:
                    return null(value)
                raise _Invalid(f"expected an integer ({t}), got {_got(value)}")
            if not lo <= value <= hi:
                raise _Invalid(f"{value} is out of range for {t}")

        return check_int

    if types.is_floating(t):

        def check_float(value: Any) -> None:
            if not isinstance(value, float):
                if value is None:
                    return null(value)
                if not isinstance(value, int) or isinstance(value, bool):
                    raise _Invalid(f"expected a number ({t}), got {_got(value)}")
            elif not math.isfinite(value):
                raise _Invalid(f"is {value}: only finite numbers are exported")

        return check_float

    if types.is_null(t):

        def check_null(value: Any) -> None:
            if value is not None:
                raise _Invalid(f"expected null, got {_got(value)}")

        return check_null

    def check_other(value: Any) -> None:  # dates, decimals, binary, maps: pyarrow decides
        if value is None:
            return null(value)
        try:
            pa.array([value], type=t)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as e:
            raise _Invalid(f"expected {t}, got {_got(value)}: {e}") from None

    return check_other
