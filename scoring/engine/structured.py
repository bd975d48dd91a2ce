"""Structured output: pull a JSON document out of a model's answer and check it against a schema.

Models wrap JSON in prose or Markdown fences even when asked not to, so `extract_json` is
lenient about *where* the JSON is but strict about *what* it is (standard JSON only: no NaN or
Infinity, which `json` would otherwise accept and no other parser would). `validate` reports
the first problems with their location so a repair prompt can tell the model exactly what to fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match, relevance

__all__ = ["StructuredOutputError", "extract_json", "repair_messages", "validate"]

# How many schema violations one error message lists; the rest are counted, not spelled out.
MAX_REPORTED_ERRORS = 3
# Bound on the prose scan, so a long answer full of brackets stays linear-ish.
MAX_CANDIDATES = 200

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)


class StructuredOutputError(ValueError):
    """The answer holds no usable JSON, or the JSON does not match the schema.

    `message` is written for both people and models: it is what the repair prompt quotes.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _NonStandardConstant(ValueError):
    """Raised from the decoder when it meets NaN, Infinity or -Infinity."""


def _reject_constant(name: str) -> Any:
    raise _NonStandardConstant(f"{name} is not valid JSON (use null or a number)")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _loads(text: str) -> Any:
    """Decode one complete JSON document (surrounding whitespace allowed)."""
    text = text.strip()
    value, end = _DECODER.raw_decode(text)
    if end != len(text):
        raise json.JSONDecodeError("Extra data after the JSON document", text, end)
    return value


def _describe(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return str(exc)


def extract_json(text: str) -> Any:
    """Return the JSON value in a model's answer.

    Tried in order: the whole answer as one JSON document; each ```json fenced block, then each
    plain ``` block; the balanced `{...}` / `[...]` spans in the prose, first to decode wins.
    Raises `StructuredOutputError` saying why nothing qualified (the decoder's complaint about
    the most plausible candidate, so a repair prompt can quote it).
    """
    if not isinstance(text, str) or not text.strip():
        raise StructuredOutputError("the answer is empty; expected a JSON document")

    try:
        return _loads(text)
    except _NonStandardConstant as exc:
        raise StructuredOutputError(f"invalid JSON: {exc}") from None
    except json.JSONDecodeError as exc:
        whole_error = exc

    fences = _FENCE.findall(text)
    labelled = [body for lang, body in fences if lang.lower() == "json"]
    plain = [body for lang, body in fences if not lang]
    fence_error: ValueError | None = None
    for body in labelled + plain:
        try:
            return _loads(body)
        except ValueError as exc:  # JSONDecodeError and _NonStandardConstant
            fence_error = fence_error or exc
    if fence_error is not None:
        raise StructuredOutputError(f"invalid JSON in the fenced block: {_describe(fence_error)}")

    span_error: ValueError | None = None
    for start, end in _balanced_spans(text):
        if end is None:
            # An opener that never closes: the answer was cut off (or is not JSON). Anything
            # after it is nested inside it, so a "complete" inner object would be a fragment.
            reason = _describe(span_error) if span_error else "it is never closed"
            raise StructuredOutputError(
                f"no complete JSON object or array in the answer ({reason}; "
                "was the answer cut off?)"
            )
        try:
            return _loads(text[start:end])
        except ValueError as exc:
            span_error = span_error or exc
    if span_error is not None:
        raise StructuredOutputError(f"invalid JSON: {_describe(span_error)}")
    if text.lstrip()[:1] in ("{", "["):
        raise StructuredOutputError(f"invalid JSON: {_describe(whole_error)}")
    raise StructuredOutputError("no JSON object or array in the answer")


def _balanced_spans(text: str) -> Iterator[tuple[int, int | None]]:
    """Yield `(start, end)` of each top-level bracketed span in prose, in order.

    Brackets inside JSON strings are ignored. A span closed by the wrong bracket is skipped.
    An opener that is never closed yields `(start, None)` and ends the scan. At most
    `MAX_CANDIDATES` spans are yielded.
    """
    pairs = {"{": "}", "[": "]"}
    count = 0
    i = 0
    while i < len(text) and count < MAX_CANDIDATES:
        if text[i] not in pairs:
            i += 1
            continue
        start, stack, in_string, mismatched, j = i, [pairs[text[i]]], False, False, i + 1
        while j < len(text) and stack:
            ch = text[j]
            if in_string:
                if ch == "\\":
                    j += 1  # skip the escaped character
                elif ch == '"':
                    in_string = False
            elif ch == '"':
                in_string = True
            elif ch in pairs:
                stack.append(pairs[ch])
            elif ch in "}]" and ch != stack.pop():
                mismatched = True  # e.g. "(see [a} ...)": prose, not JSON
                break
            j += 1
        if mismatched:
            i = j + 1
            continue
        if stack:
            yield start, None
            return
        count += 1
        yield start, j
        i = j


def format_path(path: Any) -> str:
    """`['criteria', 2, 'points']` -> `criteria[2].points`; the empty path is `(root)`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"


@lru_cache(maxsize=64)
def _validator(schema_json: str) -> tuple[Draft202012Validator, Callable[[Any], bool] | None]:
    schema = json.loads(schema_json)
    Draft202012Validator.check_schema(schema)  # a bad schema is the caller's bug: SchemaError
    return Draft202012Validator(schema), _compile(schema)


# --- a compiled check of the common case ---------------------------------------------------
# The judge's answers are checked on the hot path of every run. For schemas built only of the
# keywords below, a check compiled once per schema answers "valid" without jsonschema's
# generic walk; it is stricter than the schema where that is simpler (a float integer, a
# non-string enum), and anything it does not accept goes to jsonschema, which decides and
# names the problem. A schema with any other keyword is not compiled.

_Check = Callable[[Any], bool]
_ANNOTATIONS = frozenset({"title", "description", "$schema", "$comment", "examples", "default"})
_NUMBER_BOUNDS = frozenset({"minimum", "maximum"})


def _within(n: float, low: float | None, high: float | None) -> bool:
    return (low is None or n >= low) and (high is None or n <= high)


def _compile(schema: Any) -> _Check | None:  # noqa: C901 (one branch per keyword)
    if not isinstance(schema, dict) or not isinstance(schema.get("type"), str):
        return None
    kind = schema["type"]
    keywords = set(schema) - _ANNOTATIONS - {"type"}
    if kind == "object":
        if not keywords <= {"properties", "required", "additionalProperties"}:
            return None
        if schema.get("additionalProperties", True) not in (True, False):
            return None
        properties = schema.get("properties", {})
        required = schema.get("required", [])
        checks = {name: _compile(sub) for name, sub in properties.items()}
        if any(check is None for check in checks.values()):
            return None
        known = frozenset(properties)
        needed = frozenset(required)
        closed = schema.get("additionalProperties") is False

        def check_object(value: Any) -> bool:
            if type(value) is not dict or not needed <= value.keys():
                return False
            if closed and not value.keys() <= known:
                return False
            return all(checks[k](v) for k, v in value.items() if k in checks)  # type: ignore[misc]

        return check_object
    if kind == "array":
        if not keywords <= {"items", "minItems", "maxItems"}:
            return None
        item = _compile(schema["items"]) if "items" in schema else (lambda _: True)
        if item is None:
            return None
        low, high = schema.get("minItems", 0), schema.get("maxItems")

        def check_array(value: Any) -> bool:
            if type(value) is not list or not _within(len(value), low, high):
                return False
            return all(item(v) for v in value)

        return check_array
    if kind == "string":
        if not keywords <= {"maxLength", "minLength", "enum"}:
            return None
        enum = schema.get("enum")
        if enum is not None and not all(isinstance(x, str) for x in enum):
            return None
        allowed = frozenset(enum) if enum is not None else None
        shortest, longest = schema.get("minLength", 0), schema.get("maxLength")

        def check_string(value: Any) -> bool:
            if type(value) is not str or not _within(len(value), shortest, longest):
                return False
            return allowed is None or value in allowed

        return check_string
    if kind == "boolean":
        return (lambda value: type(value) is bool) if not keywords else None
    if kind in ("integer", "number"):
        if not keywords <= _NUMBER_BOUNDS:
            return None
        types = (int,) if kind == "integer" else (int, float)
        low, high = schema.get("minimum"), schema.get("maximum")

        def check_number(value: Any) -> bool:
            if type(value) not in types or value != value:
                return False
            return _within(value, low, high)

        return check_number
    return None


def _error_line(error: ValidationError) -> str:
    return f"{format_path(error.absolute_path)}: {error.message}"


def validate(value: Any, schema: dict[str, Any]) -> None:
    """Check `value` against a JSON Schema (Draft 2020-12); raise `StructuredOutputError` if not.

    The message starts with the most relevant violation as `path: problem`
    (e.g. `criteria[2].points: 'five' is not of type 'number'`), then up to two more.
    `format` keywords are annotations only (the Draft 2020-12 default). An invalid schema raises
    `jsonschema.SchemaError`: that is a programming error, not a bad answer.
    """
    validator, fast = _validator(json.dumps(schema, sort_keys=True))
    if fast is not None and fast(value):
        return
    errors = list(validator.iter_errors(value))
    if not errors:
        return
    first = best_match(errors)
    rest = sorted((e for e in errors if e is not first), key=relevance, reverse=True)
    lines = [_error_line(first)] + [_error_line(e) for e in rest[: MAX_REPORTED_ERRORS - 1]]
    more = len(errors) - len(lines)
    message = "; ".join(lines) + (f"; and {more} more problem(s)" if more > 0 else "")
    raise StructuredOutputError(message)


def repair_messages(
    messages: list[dict[str, Any]], bad_answer: str, error: StructuredOutputError | str
) -> list[dict[str, Any]]:
    """The conversation for one repair attempt: the original messages, the model's unusable
    answer, and a user turn quoting what was wrong and asking for the corrected JSON only.

    The bad answer stays in the conversation so the model fixes its own work instead of
    starting over (cheaper, and keeps the content it got right). `messages` is not modified.
    """
    reason = error.message if isinstance(error, StructuredOutputError) else str(error)
    return [
        *messages,
        {"role": "assistant", "content": bad_answer},
        {
            "role": "user",
            "content": (
                f"Your previous answer could not be used: {reason}\n"
                "Reply with only the corrected JSON, matching the required schema: "
                "no explanation and no code fences."
            ),
        },
    ]
