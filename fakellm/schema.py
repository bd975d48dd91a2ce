"""Deterministic content: valid JSON documents generated from a JSON Schema, and phrases.

When no rule and no offline judge answer a request, the fake server replies with a document
shaped by the request's ``response_format`` schema (or a plain phrase), seeded by the prompt
text so the same prompt always gets the same answer, worded from a fixed rubric vocabulary.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import uuid
from typing import Any

__all__ = ["generate_from_schema"]

_MAX_SCHEMA_DEPTH = 10  # past this, optional properties and extra array items are dropped
_HARD_SCHEMA_DEPTH = 64  # past this, the schema cannot be satisfied finitely: refuse it

# A fixed vocabulary, so generated strings read like rubric prose and never depend on locale.
# fmt: off
_WORDS = (
    "accurate", "answer", "advice", "assess", "avoids", "balanced", "blood", "brief", "care",
    "cautious", "checks", "clear", "clinical", "complete", "concise", "considers", "context",
    "correct", "covers", "dose", "dosage", "empathetic", "evidence", "explains", "factual",
    "follow", "guidance", "harmful", "identifies", "important", "includes", "information",
    "key", "level", "medical", "mentions", "missing", "patient", "plain", "precise",
    "provides", "reasoning", "recommends", "relevant", "response", "risk", "safe", "safety",
    "severity", "specific", "states", "steps", "suggests", "symptoms", "timely", "treatment",
    "uncertainty", "urgent", "useful", "warning",
)
# fmt: on


def _seeded(seed: int | str) -> random.Random:
    """A reproducible generator. Why not ``secrets``: fakes must repeat, not be unguessable."""
    return random.Random(seed)  # noqa: S311


def _rng_for(digest: bytes, path: str) -> random.Random:
    """A generator seeded from sha256(prompt digest + JSON path).

    Why per path: every node of a generated document gets its own stream, so adding a
    property to a schema does not change the values of the others.
    """
    seed = hashlib.sha256(digest + path.encode("utf-8")).digest()
    return _seeded(int.from_bytes(seed[:8], "big"))


def _phrase(rng: random.Random, low: int = 3, high: int = 8) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(low, high))]
    words[0] = words[0].capitalize()
    return " ".join(words)


class _SchemaFaker:
    """Builds a valid JSON document for a JSON Schema, deterministically.

    Covers what structured-output schemas use (objects, arrays, strings, numbers, enums,
    const, nullable unions, anyOf/oneOf/allOf, local ``$ref``), not all of JSON Schema.
    """

    def __init__(self, schema: dict[str, Any], digest: bytes) -> None:
        self.root = schema
        self.digest = digest

    def resolve(self, schema: Any) -> Any:
        """Follow local ``$ref`` pointers; sibling keywords override the target's."""
        for _ in range(32):
            if not isinstance(schema, dict) or "$ref" not in schema:
                return schema
            ref = schema["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#"):
                raise ValueError(f"only local $ref is supported, got {ref!r}")
            target: Any = self.root
            for part in ref[1:].split("/"):
                if part:
                    part = part.replace("~1", "/").replace("~0", "~")
                    target = target[int(part)] if isinstance(target, list) else target[part]
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **rest} if rest else target
        raise ValueError("$ref chain too long")

    def generate(self, schema: Any, path: str = "$", depth: int = 0) -> Any:
        if depth > _HARD_SCHEMA_DEPTH:
            raise ValueError("schema recursion too deep to satisfy")
        schema = self.resolve(schema)
        if schema is True or not isinstance(schema, dict):
            return _phrase(_rng_for(self.digest, path))
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            choices = [v for v in enum if v is not None] or enum
            return _rng_for(self.digest, path).choice(choices)
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                return self.generate(self._first_non_null(options), path, depth)
        if isinstance(schema.get("allOf"), list):
            return self.generate(self._merge_all_of(schema), path, depth)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            if "properties" in schema or "additionalProperties" in schema:
                kind = "object"
            elif "items" in schema or "prefixItems" in schema:
                kind = "array"
            else:
                kind = "string"
        if kind == "object":
            return self._object(schema, path, depth)
        if kind == "array":
            return self._array(schema, path, depth)
        if kind in ("integer", "number"):
            return _number(schema, _rng_for(self.digest, path), integer=kind == "integer")
        if kind == "boolean":
            return _rng_for(self.digest, path).random() < 0.5
        if kind == "null":
            return None
        return _string(schema, _rng_for(self.digest, path))

    def _first_non_null(self, options: list[Any]) -> Any:
        for option in options:
            resolved = self.resolve(option)
            if not (isinstance(resolved, dict) and resolved.get("type") == "null"):
                return option
        return options[0]

    def _merge_all_of(self, schema: dict[str, Any]) -> dict[str, Any]:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            part = self.resolve(part)
            if not isinstance(part, dict):
                continue
            for key, value in part.items():
                if key == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **value}
                elif key == "required":
                    merged["required"] = [*merged.get("required", []), *value]
                else:
                    merged.setdefault(key, value)
        return merged

    def _object(self, schema: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
        properties = schema.get("properties") or {}
        required = schema.get("required") or []
        out: dict[str, Any] = {}
        for name, sub in properties.items():
            if depth >= _MAX_SCHEMA_DEPTH and name not in required:
                continue
            out[name] = self.generate(sub, f"{path}.{name}", depth + 1)
        extra = schema.get("additionalProperties", True)
        extra_schema = extra if isinstance(extra, dict) else {"type": "string"}
        for name in required:
            if name not in out:
                out[name] = self.generate(extra_schema, f"{path}.{name}", depth + 1)
        wanted = int(schema.get("minProperties", 0))
        index = 0
        while len(out) < wanted and extra is not False:
            name = f"field_{index}"
            index += 1
            if name not in out:
                out[name] = self.generate(extra_schema, f"{path}.{name}", depth + 1)
        return out

    def _id_range(self, items: Any) -> tuple[int, int] | None:
        """(low, high) when the items are objects with a bounded integer ``criterion_id``."""
        items = self.resolve(items)
        if not isinstance(items, dict):
            return None
        spec = self.resolve((items.get("properties") or {}).get("criterion_id"))
        if not isinstance(spec, dict) or spec.get("type") != "integer":
            return None
        low, high = spec.get("minimum"), spec.get("maximum")
        if not isinstance(low, int) or not isinstance(high, int) or high < low:
            return None
        return low, high

    def _array(self, schema: dict[str, Any], path: str, depth: int) -> list[Any]:
        items = schema.get("items", {})
        prefix = schema.get("prefixItems") or []
        min_items = int(schema.get("minItems", 0))
        count = max(min_items, 3) if depth < _MAX_SCHEMA_DEPTH else min_items
        if schema.get("maxItems") is not None:
            count = min(count, int(schema["maxItems"]))
        unique = bool(schema.get("uniqueItems"))
        ids = self._id_range(items)
        if ids is not None:  # items that refer to numbered things: each number once, in order
            count = min(count, ids[1] - ids[0] + 1)
        out: list[Any] = []
        seen: set[str] = set()
        for index in range(count):
            if index < len(prefix):
                sub = prefix[index]
            elif items is False:
                break
            else:
                sub = items if isinstance(items, dict) else {}
            value = self.generate(sub, f"{path}[{index}]", depth + 1)
            if ids is not None and isinstance(value, dict) and index >= len(prefix):
                value["criterion_id"] = ids[0] + index
            if unique:
                key = json.dumps(value, sort_keys=True)
                attempt = 0
                while key in seen and attempt < 8:
                    attempt += 1
                    value = self.generate(sub, f"{path}[{index}]#{attempt}", depth + 1)
                    key = json.dumps(value, sort_keys=True)
                if key in seen:
                    if len(out) >= min_items:
                        break
                    continue
                seen.add(key)
            out.append(value)
        return out


def _string(schema: dict[str, Any], rng: random.Random) -> str:
    fmt = schema.get("format")
    if fmt == "date-time":
        text = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T12:00:00Z"
    elif fmt == "date":
        text = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    elif fmt == "email":
        text = f"{rng.choice(_WORDS)}@example.com"
    elif fmt in ("uri", "url"):
        text = f"https://example.com/{rng.choice(_WORDS)}"
    elif fmt == "uuid":
        text = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    else:
        text = _phrase(rng)
    min_len = int(schema.get("minLength", 0))
    while len(text) < min_len:
        text += " " + rng.choice(_WORDS)
    max_len = schema.get("maxLength")
    if max_len is not None and len(text) > int(max_len):
        text = text[: int(max_len)].rstrip()
        text += "x" * (min_len - len(text))
    return text


def _bounds(schema: dict[str, Any]) -> tuple[float | None, bool, float | None, bool]:
    """(low, low_open, high, high_open) from minimum/maximum and their exclusive forms."""
    low, high = schema.get("minimum"), schema.get("maximum")
    low_open = high_open = False
    ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if isinstance(ex_low, bool):  # draft 4 spells exclusivity as a flag beside minimum
        low_open = ex_low and low is not None
    elif isinstance(ex_low, int | float) and (low is None or ex_low >= low):
        low, low_open = ex_low, True
    if isinstance(ex_high, bool):
        high_open = ex_high and high is not None
    elif isinstance(ex_high, int | float) and (high is None or ex_high <= high):
        high, high_open = ex_high, True
    return low, low_open, high, high_open


def _number(schema: dict[str, Any], rng: random.Random, *, integer: bool) -> int | float:
    """A value inside the schema's bounds; 1..10 where the schema leaves it open.

    Whole numbers are preferred even for ``number`` because rubric points are whole.
    """
    low, low_open, high, high_open = _bounds(schema)
    if low is None:
        low = 1 if high is None or high > 1 else high - 9
    if high is None:
        high = 10 if low < 10 else low + 9
    int_low = math.floor(low) + 1 if low_open else math.ceil(low)
    int_high = math.ceil(high) - 1 if high_open else math.floor(high)
    step = schema.get("multipleOf")
    if isinstance(step, int | float) and step > 0 and not (integer and step % 1):
        k_low = math.ceil((int_low if integer else low) / step)
        k_high = math.floor((int_high if integer else high) / step)
        if low_open and k_low * step <= low:
            k_low += 1
        if high_open and k_high * step >= high:
            k_high -= 1
        if k_low <= k_high:
            value = rng.randint(k_low, k_high) * step
            return int(value) if float(value).is_integer() else value
    if int_low <= int_high:
        return rng.randint(int_low, int_high)
    if integer:
        return int_low  # the schema admits no integer; nothing valid exists
    value = round(rng.uniform(low, high), 3)
    if (low_open and value <= low) or (high_open and value >= high) or not low <= value <= high:
        value = (low + high) / 2
    return value


def generate_from_schema(schema: dict[str, Any], text: str) -> Any:
    """A valid, deterministic document for ``schema``, seeded by the prompt ``text``.

    Why public: tests and benchmarks can predict what the server will answer.
    """
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return _SchemaFaker(schema, digest).generate(schema)
