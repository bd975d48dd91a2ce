"""The gateway's result cache: where successful answers are kept (`ResultCache`, with the
in-process `MemoryCache`) and the key they are kept under (`cache_key`), a hash of everything
that determines an answer, so a repeated call costs nothing and gives the same result.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

__all__ = ["MemoryCache", "ResultCache", "cache_key"]

# Bumped when the cache key recipe changes, so old entries are never misread.
CACHE_KEY_VERSION = 1


class ResultCache(Protocol):
    """Where successful results are kept; values are JSON-serialisable dicts."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def set(self, key: str, value: dict[str, Any]) -> None: ...


class MemoryCache:
    """A dict-backed `ResultCache` for tests and one-off scripts (unbounded, per process)."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        value = self._data.get(key)
        return json.loads(json.dumps(value)) if value is not None else None  # a private copy

    def set(self, key: str, value: dict[str, Any]) -> None:
        self._data[key] = json.loads(json.dumps(value))

    def __len__(self) -> int:
        return len(self._data)


def cache_key(
    *,
    model: str,
    params: dict[str, Any],
    template_version: str,
    messages: list[dict[str, Any]],
    schema: dict[str, Any] | None,
) -> str:
    """SHA-256 (hex) of the canonical JSON of everything that determines an answer.

    Canonical: sorted keys, no whitespace, UTF-8 as is. Two calls share a key exactly when
    model, sampling params, prompt template version, messages and schema are all equal.
    """
    payload = {
        "v": CACHE_KEY_VERSION,
        "model": model,
        "params": params,
        "template_version": template_version,
        "messages": messages,
        "schema": schema,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
