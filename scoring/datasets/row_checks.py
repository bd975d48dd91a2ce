"""Checks of export rows against the export's schema, compiled once per schema: a
generated fast check of the common case, and a full checker that names the field path of
what is wrong (``reward_model.rubrics[2].points``).

pyarrow is imported inside the functions, never at module import.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import pyarrow


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
    return cast("Callable[[Any], bool]", namespace["fast"])


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
