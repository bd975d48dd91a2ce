"""A fake OpenAI-compatible chat-completions server on plain asyncio.

Why it exists: the scoring code talks to LLMs over HTTP through the official ``openai`` SDK.
Tests, benchmarks and offline development need a server that speaks the same wire format,
answers deterministically, can be scripted by prompt content, injects faults (429, 500,
hangs, malformed JSON) reproducibly, and records what the client did (arrival times, peak
concurrency, token usage) so rate limiting, retries and concurrency caps can be asserted.

Why a hand-written HTTP/1.1 server: it must stay on the standard library (no aiohttp, no
Django), push thousands of requests/s through 64+ keep-alive connections on a small machine,
and never spend a thread per request. ``asyncio.start_server`` with a tiny parser does that;
only what OpenAI clients send is supported (``Content-Length`` bodies, keep-alive, pipelining).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import ipaddress
import itertools
import json
import logging
import math
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakellm import judge

__all__ = [
    "FakeConfig",
    "FakeLLMServer",
    "Rule",
    "generate_from_schema",
    "is_loopback_host",
    "load_rules",
]

log = logging.getLogger(__name__)

OUTCOMES = ("ok", "429", "500", "timeout", "malformed", "400")
"""Every chat request ends in exactly one of these; ``400`` is a request fakellm rejected."""

_READ_LIMIT = 1 << 20  # largest request head we accept (a body is read separately)
_MAX_BODY = 64 << 20  # prompts are big, but a 64 MiB request is a client bug
_MAX_SCHEMA_DEPTH = 10  # past this, optional properties and extra array items are dropped
_HARD_SCHEMA_DEPTH = 64  # past this, the schema cannot be satisfied finitely: refuse it

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
}

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


# --------------------------------------------------------------------------------------
# Configuration


@dataclass
class Rule:
    """A scripted answer: the first rule whose pattern occurs in the prompt decides the reply.

    Why a pattern over the whole conversation text: tests script a reply for "the prompt that
    mentions X" without reproducing the exact prompt the code under test builds.
    """

    pattern: str
    reply: str | dict[str, Any] | list[Any]
    regex: bool = False

    def __post_init__(self) -> None:
        # Compile once and serialize once: rules are checked on every request.
        self._compiled: re.Pattern[str] | None = re.compile(self.pattern) if self.regex else None
        self._text: str = self.reply if isinstance(self.reply, str) else json.dumps(self.reply)

    def matches(self, text: str) -> bool:
        """Whether this rule applies to the concatenated message text."""
        if self._compiled is not None:
            return self._compiled.search(text) is not None
        return self.pattern in text

    @property
    def reply_text(self) -> str:
        """The reply as the assistant message content (dicts/lists as JSON)."""
        return self._text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rule:
        """Build a rule from its JSON form ``{"pattern", "reply", "regex"}``."""
        if not isinstance(data, dict) or "pattern" not in data or "reply" not in data:
            raise ValueError(f"a rule needs 'pattern' and 'reply': {data!r}")
        unknown = set(data) - {"pattern", "reply", "regex"}
        if unknown:
            raise ValueError(f"unknown rule fields {sorted(unknown)}")
        return cls(str(data["pattern"]), data["reply"], bool(data.get("regex", False)))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as accepted by :meth:`from_dict`."""
        return {"pattern": self.pattern, "reply": self.reply, "regex": self.regex}


def load_rules(path: str | Path) -> list[Rule]:
    """Read rules from a JSON file: a list of ``{"pattern", "reply", "regex"}`` objects
    (or an object with such a list under ``"rules"``)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(data, dict):
        data = data.get("rules")
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of rules")
    return [Rule.from_dict(item) for item in data]


def _as_rule(item: Rule | dict[str, Any]) -> Rule:
    return item if isinstance(item, Rule) else Rule.from_dict(item)


@dataclass
class FakeConfig:
    """How the fake server behaves; every field can be changed at runtime.

    Fault rates are probabilities per chat request, drawn from ``random.Random(seed)`` so a
    run is reproducible; they must sum to at most 1.
    """

    models: list[str] = field(default_factory=lambda: ["fake-judge"])
    latency: float = 0.0
    latency_jitter: float = 0.0
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_timeout: float = 0.0
    rate_malformed: float = 0.0
    retry_after: float = 1.0
    hang_seconds: float = 30.0
    seed: int = 0
    rules: list[Rule] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.models, str):
            raise ValueError("models must be a list of model names")
        self.rules = [_as_rule(r) for r in self.rules]
        self.models = [str(m) for m in self.models]
        self.validate()

    def validate(self) -> None:
        """Reject settings that would make the server misbehave in confusing ways."""
        if not self.models:
            raise ValueError("models must name at least one model")
        rates = (self.rate_429, self.rate_500, self.rate_timeout, self.rate_malformed)
        if any(not 0.0 <= r <= 1.0 for r in rates):
            raise ValueError("fault rates must lie in [0, 1]")
        if sum(rates) > 1.0 + 1e-9:
            raise ValueError("fault rates must sum to at most 1")
        for name in ("latency", "latency_jitter", "retry_after", "hang_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    def with_changes(self, **changes: Any) -> FakeConfig:
        """A validated copy with some fields replaced (rules may be given as dicts)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown config fields {sorted(unknown)}")
        current = {name: getattr(self, name) for name in names}
        current.update(changes)
        for name in ("latency", "latency_jitter", "retry_after", "hang_seconds"):
            current[name] = float(current[name])
        for name in ("rate_429", "rate_500", "rate_timeout", "rate_malformed"):
            current[name] = float(current[name])
        current["seed"] = int(current["seed"])
        current["models"] = list(current["models"])
        current["rules"] = list(current["rules"])
        return FakeConfig(**current)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, the same shape ``POST /_config`` accepts."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["rules"] = [r.to_dict() for r in self.rules]
        data["models"] = list(self.models)
        return data


def is_loopback_host(host: str) -> bool:
    """Whether binding to ``host`` keeps the server on this machine.

    Why: a fake that answers anything must never be reachable from the network by accident.
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------------------
# Deterministic content


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


def _message_text(content: Any) -> str:
    """The text of one message's content (a string or a list of typed parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "\n".join(parts)
    return ""


def _tokens(chars: int) -> int:
    return (chars + 3) // 4


# --------------------------------------------------------------------------------------
# HTTP plumbing


def _error_body(message: str, kind: str, code: str | None = None) -> bytes:
    return json.dumps(
        {"error": {"message": message, "type": kind, "param": None, "code": code}}
    ).encode()


def _encode_response(
    status: int,
    body: bytes,
    headers: list[tuple[str, str]] | None,
    keep_alive: bool,
    http10: bool,
) -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    )
    if headers:
        head += "".join(f"{name}: {value}\r\n" for name, value in headers)
    if not keep_alive:
        head += "Connection: close\r\n"
    elif http10:
        head += "Connection: keep-alive\r\n"
    return (head + "\r\n").encode("latin-1") + body


class _BadRequest(Exception):
    """The request head cannot be parsed; answer 400 and close."""


def _parse_head(head: bytes) -> tuple[bytes, bytes, bool, int, bool, bool, bool]:
    """(method, target, http10, content_length, keep_alive, chunked, expect_continue)."""
    lines = head.lstrip(b"\r\n")[:-4].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise _BadRequest("malformed request line")
    method, target, version = parts
    content_length = 0
    connection = b""
    chunked = False
    expect_continue = False
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise _BadRequest("malformed header line")
        name = name.strip().lower()
        if name == b"content-length":
            try:
                content_length = int(value)
            except ValueError:
                raise _BadRequest("invalid Content-Length") from None
            if content_length < 0:
                raise _BadRequest("invalid Content-Length")
        elif name == b"connection":
            connection = value.strip().lower()
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"expect":
            expect_continue = value.strip().lower() == b"100-continue"
    http10 = version == b"HTTP/1.0"
    keep_alive = b"keep-alive" in connection if http10 else b"close" not in connection
    return method, target, http10, content_length, keep_alive, chunked, expect_continue


_Result = tuple[int, bytes, list[tuple[str, str]] | None]


class _Stats:
    """Counters touched on every request; mutated only under the server's lock."""

    __slots__ = ("arrivals", "by_model", "by_outcome", "max_in_flight", "requests", "usage")

    def __init__(self) -> None:
        self.requests = 0
        self.by_outcome = dict.fromkeys(OUTCOMES, 0)
        self.arrivals: list[float] = []
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0}
        self.max_in_flight = 0
        self.by_model: dict[str, int] = {}


# --------------------------------------------------------------------------------------
# The server


class FakeLLMServer:
    """The fake server: run it in a background thread (tests) or in the current loop (CLI).

    ``stats()``, ``reset()`` and ``configure()`` may be called from any thread; the same
    operations are exposed over HTTP as ``GET /_stats``, ``POST /_reset``, ``POST /_config``.
    ``configure()`` and ``reset()`` restart the fault draws from ``seed``, so a test that
    configures, runs N sequential requests, resets and runs them again sees the same faults.
    """

    def __init__(
        self,
        config: FakeConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        allow_remote: bool = False,
    ) -> None:
        if not allow_remote and not is_loopback_host(host):
            raise ValueError(f"refusing to serve on non-loopback host {host!r}")
        self._config = config if config is not None else FakeConfig()
        self._config.validate()
        self.host = host
        self.port = port
        self.url = ""
        self._lock = threading.Lock()
        self._stats = _Stats()
        self._in_flight = 0
        self._seen_prefixes: set[str] = set()
        self._fault_rng = _seeded(self._config.seed)
        self._jitter_rng = _seeded(f"jitter-{self._config.seed}")
        self._ids = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None

    # ---- thread-safe control --------------------------------------------------------

    @property
    def config(self) -> FakeConfig:
        """The current configuration (replace it with :meth:`configure`, don't mutate it)."""
        return self._config

    def configure(self, **changes: Any) -> None:
        """Change some config fields (same names as :class:`FakeConfig`) and reseed faults."""
        with self._lock:
            self._config = self._config.with_changes(**changes)
            self._reseed()

    def reset(self) -> None:
        """Zero the stats, forget the prefix cache and restart the fault draws from the seed."""
        with self._lock:
            self._stats = _Stats()
            self._stats.max_in_flight = self._in_flight
            self._seen_prefixes.clear()
            self._reseed()

    def stats(self) -> dict[str, Any]:
        """A snapshot of the counters (a fresh dict, safe to keep)."""
        with self._lock:
            s = self._stats
            return {
                "requests": s.requests,
                "by_outcome": dict(s.by_outcome),
                "arrivals": list(s.arrivals),
                "usage": dict(s.usage),
                "max_in_flight": s.max_in_flight,
                "in_flight": self._in_flight,
                "by_model": dict(s.by_model),
            }

    def _reseed(self) -> None:
        self._fault_rng = _seeded(self._config.seed)
        self._jitter_rng = _seeded(f"jitter-{self._config.seed}")

    # ---- lifecycle ------------------------------------------------------------------

    async def start(self) -> str:
        """Bind and start accepting in the running loop; returns the base URL (no ``/v1``)."""
        if self._server is not None:
            raise RuntimeError("server already started")
        self._server = await asyncio.start_server(
            self._handle_connection, self.host, self.port, limit=_READ_LIMIT, backlog=1024
        )
        host, port = self._server.sockets[0].getsockname()[:2]
        self.port = port
        self.url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        return self.url

    async def serve(self) -> None:
        """Serve in the current loop until cancelled (the CLI's entry point)."""
        if self._server is None:
            await self.start()
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Stop listening and drop every connection, including hung ones."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    def start_in_thread(self) -> str:
        """Run the server on its own event loop in a daemon thread; returns once listening.

        Why a thread: synchronous tests (and Django code under test) can then talk to it
        without owning an event loop.
        """
        if self._thread is not None:
            raise RuntimeError("server already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(self._thread_main(ready))
            except BaseException as exc:  # reported to the caller of start_in_thread
                failure.append(exc)
            finally:
                ready.set()

        self._thread = threading.Thread(target=run, name="fakellm", daemon=True)
        self._thread.start()
        if not ready.wait(timeout=30):
            raise RuntimeError("fakellm did not start within 30 s")
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self.url

    async def _thread_main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        await self.start()
        ready.set()
        try:
            await self._stop_event.wait()
        finally:
            await self.aclose()

    def stop(self) -> None:
        """Stop a server started with :meth:`start_in_thread` (idempotent)."""
        thread, loop, event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # the loop may already be gone
                loop.call_soon_threadsafe(event.set)
        thread.join(timeout=30)
        self._thread = None
        self._loop = None

    def __enter__(self) -> FakeLLMServer:
        self.start_in_thread()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> FakeLLMServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---- HTTP -----------------------------------------------------------------------

    async def _handle_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            await self._serve_connection(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away mid-request
        except asyncio.CancelledError:
            # Shutdown cancels open connections; ending quietly keeps Python 3.11's stream
            # protocol from logging the cancellation as an unhandled error.
            pass
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Answer requests on one connection in order until it closes (keep-alive)."""
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return  # closed between requests: the normal end of a keep-alive connection
            except asyncio.LimitOverrunError:
                body = _error_body("request head too large", "invalid_request_error")
                writer.write(_encode_response(431, body, None, False, False))
                return
            try:
                method, target, http10, length, keep_alive, chunked, expect = _parse_head(head)
            except _BadRequest as exc:
                body = _error_body(str(exc), "invalid_request_error")
                writer.write(_encode_response(400, body, None, False, False))
                return
            if chunked or length > _MAX_BODY:
                status = 501 if chunked else 413
                message = "chunked request bodies are not supported" if chunked else "too large"
                body = _error_body(message, "invalid_request_error")
                writer.write(_encode_response(status, body, None, False, http10))
                return
            if expect and length:
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = await reader.readexactly(length) if length else b""
            try:
                result = await self._route(method, target, body, reader)
            except Exception:  # a fakellm bug: say so instead of dropping the connection
                log.exception("fakellm failed on %s %s", method, target)
                message = "fakellm internal failure (not a simulated fault)"
                result = (500, _error_body(message, "fakellm_bug"), None)
            if result is None:
                return  # a simulated hang: drop the connection without an answer
            status, payload, headers = result
            writer.write(_encode_response(status, payload, headers, keep_alive, http10))
            await writer.drain()
            if not keep_alive:
                return

    async def _route(
        self, method: bytes, target: bytes, body: bytes, reader: asyncio.StreamReader
    ) -> _Result | None:
        path = target.split(b"?", 1)[0].decode("latin-1").rstrip("/")
        if path in ("/v1/chat/completions", "/chat/completions"):
            if method != b"POST":
                return self._method_not_allowed()
            return await self._chat(body, reader)
        if method == b"GET" and path in ("/v1/models", "/models"):
            data = [self._model_entry(m) for m in self._config.models]
            return 200, json.dumps({"object": "list", "data": data}).encode(), None
        if method == b"GET" and path.startswith(("/v1/models/", "/models/")):
            name = path.split("/models/", 1)[1]
            if name in self._config.models:
                return 200, json.dumps(self._model_entry(name)).encode(), None
            return 404, _error_body(f"model {name!r} not found", "invalid_request_error"), None
        if path == "/_stats":
            if method != b"GET":
                return self._method_not_allowed()
            return 200, json.dumps(self.stats()).encode(), None
        if path == "/_reset":
            if method != b"POST":
                return self._method_not_allowed()
            self.reset()
            return 200, b'{"ok": true}', None
        if path == "/_config":
            if method == b"POST":
                try:
                    changes = json.loads(body or b"{}")
                    if not isinstance(changes, dict):
                        raise ValueError("expected a JSON object")
                    self.configure(**changes)
                except (ValueError, TypeError, re.error) as exc:
                    return 400, _error_body(str(exc), "invalid_request_error"), None
            elif method != b"GET":
                return self._method_not_allowed()
            return 200, json.dumps({"config": self._config.to_dict()}).encode(), None
        if method == b"GET" and path in ("", "/_health"):
            return 200, b'{"status": "ok"}', None
        return 404, _error_body(f"no route for {path or '/'}", "invalid_request_error"), None

    @staticmethod
    def _method_not_allowed() -> _Result:
        return 405, _error_body("method not allowed", "invalid_request_error"), None

    @staticmethod
    def _model_entry(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "owned_by": "fakellm", "created": 0}

    # ---- chat completions -----------------------------------------------------------

    def _reject(self, arrival: float, message: str) -> _Result:
        with self._lock:
            self._stats.requests += 1
            self._stats.arrivals.append(arrival)
            self._stats.by_outcome["400"] += 1
        return 400, _error_body(message, "invalid_request_error"), None

    async def _chat(self, body: bytes, reader: asyncio.StreamReader) -> _Result | None:
        arrival = time.monotonic()
        try:
            request = json.loads(body)
        except ValueError:
            return self._reject(arrival, "request body is not valid JSON")
        if not isinstance(request, dict):
            return self._reject(arrival, "request body must be a JSON object")
        messages = request.get("messages")
        if not isinstance(messages, list) or not messages:
            return self._reject(arrival, "'messages' must be a non-empty list")
        if not all(isinstance(m, dict) for m in messages):
            return self._reject(arrival, "each message must be an object")
        if request.get("stream"):
            return self._reject(arrival, "fakellm does not support stream=true")
        config = self._config
        model = request.get("model") or config.models[0]
        if not isinstance(model, str):
            return self._reject(arrival, "'model' must be a string")
        texts = [_message_text(m.get("content")) for m in messages]
        first = texts[0]

        with self._lock:
            stats = self._stats
            stats.requests += 1
            stats.arrivals.append(arrival)
            stats.by_model[model] = stats.by_model.get(model, 0) + 1
            self._in_flight += 1
            if self._in_flight > stats.max_in_flight:
                stats.max_in_flight = self._in_flight
            draw = self._fault_rng.random()
            if draw < config.rate_429:
                outcome = "429"
            elif draw < config.rate_429 + config.rate_500:
                outcome = "500"
            elif draw < config.rate_429 + config.rate_500 + config.rate_timeout:
                outcome = "timeout"
            elif draw < (
                config.rate_429 + config.rate_500 + config.rate_timeout + config.rate_malformed
            ):
                outcome = "malformed"
            else:
                outcome = "ok"
            stats.by_outcome[outcome] += 1
            delay = config.latency
            if config.latency_jitter > 0:
                delay += self._jitter_rng.uniform(0.0, config.latency_jitter)
            cached = first in self._seen_prefixes
            if not cached:
                self._seen_prefixes.add(first)

        try:
            if outcome == "timeout":
                # Hang until hang_seconds pass or the client gives up and closes, so a request
                # the client abandoned does not inflate in_flight/max_in_flight.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_until_closed(reader), config.hang_seconds)
                return None
            if delay > 0:
                await asyncio.sleep(delay)
            if outcome == "429":
                wait = config.retry_after
                headers = [
                    ("Retry-After", f"{wait:g}"),
                    ("retry-after-ms", f"{wait * 1000:g}"),
                ]
                message = f"Rate limit reached for {model} (simulated by fakellm)."
                return 429, _error_body(message, "rate_limit_error", "rate_limit_exceeded"), headers
            if outcome == "500":
                message = "The server had an error while processing your request (simulated)."
                return 500, _error_body(message, "server_error", "internal_error"), None
            text = "\n".join(texts)
            try:
                content = self._reply(config, request, text)
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                with self._lock:  # it was not answered as drawn: count it as rejected
                    self._stats.by_outcome[outcome] -= 1
                    self._stats.by_outcome["400"] += 1
                message = f"fakellm cannot answer this response_format: {exc}"
                return 400, _error_body(message, "invalid_request_error"), None
            if outcome == "malformed":
                content = _malformed(content)
            prompt_tokens = _tokens(sum(map(len, texts)))
            completion_tokens = _tokens(len(content))
            cached_tokens = _tokens(len(first)) if cached else 0
            with self._lock:
                usage = self._stats.usage
                usage["prompt_tokens"] += prompt_tokens
                usage["completion_tokens"] += completion_tokens
                usage["cached_tokens"] += cached_tokens
            answer = {
                "id": f"chatcmpl-fake-{next(self._ids)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                    "prompt_tokens_details": {"cached_tokens": cached_tokens},
                    "completion_tokens_details": {"reasoning_tokens": 0},
                },
                "system_fingerprint": "fakellm",
            }
            return 200, json.dumps(answer).encode(), None
        finally:
            with self._lock:
                self._in_flight -= 1

    @staticmethod
    def _reply(config: FakeConfig, request: dict[str, Any], text: str) -> str:
        """Scripted rule first; then, for the studio's own requests, the offline judge's
        answer (decided by content); then a schema-shaped document, then a plain phrase."""
        for rule in config.rules:
            if rule.matches(text):
                return rule.reply_text
        digest = hashlib.sha256(text.encode("utf-8")).digest()
        response_format = request.get("response_format")
        if isinstance(response_format, dict):
            kind = response_format.get("type")
            if kind == "json_schema":
                spec = response_format.get("json_schema") or {}
                schema = spec.get("schema")
                if isinstance(schema, dict):
                    judged = judge.answer(str(spec.get("name", "")), schema, text)
                    if judged is not None:
                        return json.dumps(judged)
                    return json.dumps(_SchemaFaker(schema, digest).generate(schema))
            elif kind == "json_object":
                return json.dumps({"answer": _phrase(_rng_for(digest, "$answer"))})
        return _phrase(_rng_for(digest, "$text"))


async def _until_closed(reader: asyncio.StreamReader) -> None:
    """Return once the peer has closed the connection (anything it still sends is dropped)."""
    with contextlib.suppress(ConnectionError):
        while await reader.read(65536):
            pass


def _malformed(content: str) -> str:
    """A truncated version of the reply that is certainly not valid JSON."""
    cut = content[: max(1, len(content) // 2)]
    try:
        json.loads(cut)
    except ValueError:
        return cut
    return '{"criteria": [{"text": "' + cut
