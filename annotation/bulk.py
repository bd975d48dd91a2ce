"""Many rows into one table at the database's speed: PostgreSQL's ``COPY``, one
``executemany`` elsewhere (SQLite). No model instances and no per-row ORM work: each
column's values are converted to what the column stores by one converter chosen per column.
Runs inside the caller's transaction; constraints are checked by the database as for any
insert (foreign keys at commit, as Django declares them deferred), so rows may name ids that
``new_ids`` handed out for rows inserted later in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db import connection, models


def _converter(field: models.Field[Any, Any]) -> Callable[[Any], Any] | None:
    """The function from a value to what ``field``'s column stores; None: the value itself."""
    postgresql = connection.vendor == "postgresql"
    if isinstance(field, models.JSONField):
        encoder = field.encoder
        return lambda value: json.dumps(value, cls=encoder)
    if isinstance(field, models.UUIDField):
        # PostgreSQL has a uuid type; Django keeps a UUID elsewhere as 32 hex digits.
        return str if postgresql else (lambda value: value.hex)
    if isinstance(field, models.DateTimeField) and postgresql:
        return None  # psycopg sends an aware datetime as timestamptz
    if field.get_internal_type() in {
        "AutoField",
        "BigAutoField",
        "BigIntegerField",
        "BooleanField",
        "CharField",
        "FloatField",
        "ForeignKey",
        "IntegerField",
        "PositiveBigIntegerField",
        "PositiveIntegerField",
        "PositiveSmallIntegerField",
        "SmallIntegerField",
        "TextField",
    }:
        return None
    return lambda value: field.get_db_prep_save(value, connection)


def new_ids(model: type[models.Model], count: int) -> list[int]:
    """``count`` primary keys for rows of ``model`` that the caller inserts next, in this
    transaction, with ``insert_rows``. PostgreSQL takes them from the table's sequence; on
    SQLite they follow the largest id ever given (a write transaction is serialisable there,
    so no one else can take them before the insert; call ``insert_rows`` before asking
    again)."""
    if count == 0:
        return []
    table = model._meta.db_table
    column = str(model._meta.pk.column)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [table, column, count],
            )
            return [row[0] for row in cursor.fetchall()]
        quoted = connection.ops.quote_name(table)
        cursor.execute(f"SELECT MAX({connection.ops.quote_name(column)}) FROM {quoted}")  # noqa: S608
        largest = cursor.fetchone()[0] or 0
        cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
        given = cursor.fetchone()
        start = max(largest, given[0] if given else 0) + 1
    return list(range(start, start + count))


def _field(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    field = model._meta.get_field(name)  # a name or an attname
    if not isinstance(field, models.Field) or not field.concrete:
        raise ValueError(f"{model.__name__}.{name} is not a column")
    return field


def insert_rows(
    model: type[models.Model], columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> int:
    """Insert ``rows`` (one value per name in ``columns``: field names, ``<fk>_id`` for a
    foreign key) into ``model``'s table; returns how many. Values are taken as they are: a
    field's default or ``auto_now_add`` is not applied, so every column but the primary key
    must be given (ValueError otherwise)."""
    fields = [_field(model, name) for name in columns]
    missing = {f.attname for f in model._meta.concrete_fields if not f.primary_key} - {
        f.attname for f in fields
    }
    if missing:
        raise ValueError(f"insert_rows into {model.__name__} misses {', '.join(sorted(missing))}")
    converters = [(i, c) for i, c in enumerate(map(_converter, fields)) if c is not None]
    names = ", ".join(connection.ops.quote_name(str(f.column)) for f in fields)
    table = connection.ops.quote_name(model._meta.db_table)

    def convert(row: Sequence[Any]) -> Sequence[Any]:
        if len(row) != len(fields):
            raise ValueError(f"a row of {len(row)} values for {len(fields)} columns")
        values = list(row)
        for i, c in converters:
            values[i] = c(values[i])
        return values

    converted = map(convert, rows)
    count = 0
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in converted:
                    copy.write_row(row)
                    count += 1
        else:
            batch = list(converted)
            marks = ", ".join(["%s"] * len(fields))
            # identifiers from the model, values as parameters
            cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", batch)  # noqa: S608
            count = len(batch)
    return count
