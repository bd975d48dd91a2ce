"""Writing a project backup: each model's records serialised in file order, one compact,
sorted, ASCII JSON line each, read from one consistent view of the database and written to
a file that takes its final name only once complete.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from django.db import connection, models, transaction

from annotation.projects.models import Project
from scoring.datasets.backup.refs import BackupError, Fields, _Out
from scoring.datasets.backup.specs import Spec, _fields, _is_project_link, _related_model

# --- writing ------------------------------------------------------------------------------------


def _dump(record: dict[str, Any]) -> bytes:
    return (
        json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n"
    ).encode("ascii")


def _plain(f: models.Field[Any, Any], value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        raise BackupError(f"{f.model._meta.label}.{f.name}: binary fields are not backed up.")
    return value


def _serialize(spec: Spec, obj: Any, ctx: _Out) -> Fields:
    fields: Fields = {}
    for f in _fields(spec):
        if _is_project_link(f, spec):
            continue
        if f.name in spec.fk_out:
            fields[f.name] = spec.fk_out[f.name](obj)
        elif f.is_relation:
            pk = getattr(obj, f.attname)
            where = f"{spec.label} {obj.pk} ({f.name})"
            fields[f.name] = None if pk is None else ctx.ref(_related_model(f), pk, where)
        elif f.name in spec.out:
            fields[f.name] = spec.out[f.name](getattr(obj, f.attname), obj, ctx)
        else:
            fields[f.name] = _plain(f, getattr(obj, f.attname))
    return fields


def _records(spec: Spec, project: Project, ctx: _Out) -> Iterator[tuple[str, Fields]]:
    """The model's records in file order."""
    rows = spec.rows(project)
    if spec.stream:
        last = None
        for obj in rows.iterator(chunk_size=2000):
            fields = _serialize(spec, obj, ctx)
            ref = spec.ref(fields, 0)
            key = spec.sort_key(ref, fields)
            if last is not None and key <= last:
                raise BackupError(f"{spec.label}: the database returned {ref} out of order.")
            last = key
            yield ref, fields
        return
    found = []
    memo = ctx.refs.setdefault(spec.model, {})
    primed = dict(memo) if spec.prime else None
    for n, obj in enumerate(rows.order_by("pk"), start=1):
        fields = _serialize(spec, obj, ctx)
        ref = spec.ref(fields, n)
        if primed is not None and primed.get(obj.pk) != ref:
            raise BackupError(f"{spec.label} {obj.pk}: primed as {primed.get(obj.pk)}, is {ref}.")
        if spec.remember:
            memo[obj.pk] = ref
        found.append((spec.sort_key(ref, fields), ref, fields))
    found.sort(key=lambda t: t[0])
    for i in range(1, len(found)):
        if found[i][0] == found[i - 1][0]:
            raise BackupError(f"{spec.label}: two records named {found[i][1]}.")
    yield from ((ref, fields) for _, ref, fields in found)


@contextmanager
def _snapshot() -> Iterator[None]:
    """One consistent view of the project: on PostgreSQL a repeatable-read transaction
    (when this is the outermost one); on SQLite the settings' IMMEDIATE transactions, which
    hold writers off until the backup is written (a second or so for the HealthBench
    sample)."""
    with transaction.atomic():
        if connection.vendor == "postgresql" and connection.savepoint_ids == []:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


@contextmanager
def _sink(out: IO[bytes] | str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    if isinstance(out, str | os.PathLike):
        path = Path(out)
        partial = path.with_name(path.name + ".partial")
        with partial.open("wb") as f:
            yield f
        partial.replace(path)
    else:
        yield out
