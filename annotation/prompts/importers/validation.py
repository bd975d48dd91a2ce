"""Field validation shared by the format parsers.

Every helper raises InvalidRecord with a reason naming the offending field, e.g.
``rubrics[2].points must be a number, got a string``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from annotation.prompts.importers.records import ROLES
from annotation.prompts.models import PROBE_SOURCE_PREFIX

MAX_ID_LENGTH = 200  # Prompt.external_id
MAX_SOURCE_LENGTH = 200  # Response.source


class InvalidRecord(Exception):
    """The record does not match its format; the message is the reason."""


_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _path(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def get(obj: Mapping[str, Any], key: str, prefix: str = "") -> Any:
    """The value of a required field; absent or null is an error."""
    value = obj.get(key)
    if value is None:
        raise InvalidRecord(f"missing field '{_path(prefix, key)}'")
    return value


def as_str(value: Any, where: str, *, non_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidRecord(f"{where} must be a string, got {_describe(value)}")
    if non_empty and not value.strip():
        raise InvalidRecord(f"{where} must not be empty")
    return value


def as_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRecord(f"{where} must be a number, got {_describe(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise InvalidRecord(f"{where} is too large") from None
    if not math.isfinite(number):
        raise InvalidRecord(f"{where} must be a finite number")
    return number


def as_list(value: Any, where: str, *, non_empty: bool = False) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidRecord(f"{where} must be a list, got {_describe(value)}")
    if non_empty and not value:
        raise InvalidRecord(f"{where} must not be empty")
    return value


def as_dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRecord(f"{where} must be an object, got {_describe(value)}")
    return value


def as_tags(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    return [as_str(tag, f"{where}[{i}]") for i, tag in enumerate(as_list(value, where))]


def as_messages(value: Any, where: str) -> list[dict[str, str]]:
    """A non-empty list of ``{role, content}`` dicts; extra keys are dropped."""
    messages = []
    for i, item in enumerate(as_list(value, where, non_empty=True)):
        at = f"{where}[{i}]"
        message = as_dict(item, at)
        role = as_str(get(message, "role", at), f"{at}.role")
        if role not in ROLES:
            raise InvalidRecord(f"{at}.role must be one of {', '.join(ROLES)}, got '{role}'")
        content = as_str(get(message, "content", at), f"{at}.content")
        messages.append({"role": role, "content": content})
    return messages


def as_prompt(value: Any, where: str) -> list[dict[str, str]]:
    """A prompt given either as a plain string (one user turn) or as a message list."""
    if isinstance(value, str):
        return [{"role": "user", "content": as_str(value, where, non_empty=True)}]
    return as_messages(value, where)


def as_source(value: Any, where: str, default: str) -> str:
    if value is None or value == "":
        return default
    source = as_str(value, where, non_empty=True).strip()
    if len(source) > MAX_SOURCE_LENGTH:
        raise InvalidRecord(f"{where} is longer than {MAX_SOURCE_LENGTH} characters")
    if source.startswith(PROBE_SOURCE_PREFIX):
        raise InvalidRecord(
            f"{where} “{source}” starts with “{PROBE_SOURCE_PREFIX}”, which names a judge "
            "probe's perturbed copies: rename the source"
        )
    return source


def default_external_id(messages: list[dict[str, str]]) -> str:
    canonical = json.dumps(messages, sort_keys=True, ensure_ascii=False)
    return hashlib.sha1(canonical.encode("utf-8"), usedforsecurity=False).hexdigest()[:16]


def external_id(obj: Mapping[str, Any], keys: Iterable[str], messages: list[dict[str, str]]) -> str:
    """The first non-empty id among ``keys``, else a hash of the messages."""
    for key in keys:
        value = obj.get(key)
        if value is None or value == "":
            continue
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise InvalidRecord(f"{key} must be a string or an integer, got {_describe(value)}")
        text = str(value).strip()
        if len(text) > MAX_ID_LENGTH:
            raise InvalidRecord(f"{key} is longer than {MAX_ID_LENGTH} characters")
        if text:
            return text
    return default_external_id(messages)


def put_metadata(metadata: dict[str, Any], key: str, value: Any) -> None:
    """Add a field the importer itself writes; a source field of that name would be lost."""
    if key in metadata:
        raise InvalidRecord(
            f"the record has a top-level field '{key}', a name the importer uses for "
            "fields it keeps itself; rename that field"
        )
    metadata[key] = value


def rest(obj: Mapping[str, Any], consumed: Iterable[str]) -> dict[str, Any]:
    skip = set(consumed)
    return {k: v for k, v in obj.items() if k not in skip}
