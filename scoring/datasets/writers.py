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
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scoring.datasets.card import EXTENSIONS, front_matter
from scoring.datasets.kinds.base import SPLITS
from scoring.datasets.options import FORMATS
from scoring.datasets.row_checks import _Invalid, _row_checker
from scoring.datasets.sinks import _CHUNK, _JsonlSink, _ParquetSink, _Sink

if TYPE_CHECKING:
    import pyarrow

CARD_NAME = "README.md"
PROGRESS_EVERY = 1000


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


def _is_string_field(schema: pyarrow.Schema, name: str) -> bool:
    import pyarrow.types as types

    index = schema.get_field_index(name)
    return index >= 0 and bool(types.is_string(schema.field(index).type))


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
