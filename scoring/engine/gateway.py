"""The LLM gateway: every model call of the scoring engine goes through `Gateway.chat`.

One `Gateway` wraps one OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, a proxy...) and adds
what the scoring science needs from it:

* exact accounting: the `Usage` of every answer the endpoint billed, including answers that
  turned out malformed and answers of calls that failed in the end (`GatewayError.usage`), so
  a job's token and cost totals match the provider's invoice;
* structured output: JSON that parses and matches the caller's JSON Schema, or an error that
  says why (one repair round-trip first);
* resilience: retries with backoff for rate limits, server errors, timeouts and dropped
  connections; a concurrency cap and client-side rpm/tpm limits;
* reproducibility and thrift: a result cache keyed on everything that determines the answer;
* secrecy: the API key never appears in a repr, an exception or a log record.

Plain Python (no Django): the Celery tasks and the web views build `EndpointConfig` from the
database and resolve the key themselves.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Protocol

import httpx2
import openai

from scoring.engine import structured
from scoring.engine.netguard import (
    BLOCKED_MESSAGE,
    NetworkPolicy,
    blocked_in_chain,
    guarded_transport,
    url_problems,
)
from scoring.engine.ratelimit import RateLimiter, WindowLimiter

__all__ = [
    "CallResult",
    "EndpointConfig",
    "Gateway",
    "GatewayError",
    "MemoryCache",
    "ResultCache",
    "Usage",
    "cache_key",
    "estimate_tokens",
]

log = logging.getLogger(__name__)

# Exponential backoff with full jitter: retry n (0-based) sleeps uniform(0, min(CAP, BASE * 2**n)).
BACKOFF_BASE = 0.5
BACKOFF_CAP = 20.0
# A server asking for a longer pause than this is not retried: the call fails now and the job
# runner decides, instead of a worker sleeping for minutes holding a concurrency slot.
MAX_RETRY_AFTER = 120.0
# Rough size of a token in characters for English text (used only for rate-limit estimates).
CHARS_PER_TOKEN = 4
# Bumped when the cache key recipe changes, so old entries are never misread.
CACHE_KEY_VERSION = 1

ErrorKind = Literal[
    "rate_limited",
    "server_error",
    "timeout",
    "connection",
    "malformed",
    "client_error",
    "config",
    "blocked",
]
# How structured output is requested, best first; a Gateway steps down when the server rejects
# one (see `Gateway._complete`).
FormatMode = Literal["json_schema", "json_object", "prompt"]
_FORMAT_MODES: tuple[FormatMode, ...] = ("json_schema", "json_object", "prompt")
_FORMAT_HINTS = ("response_format", "response format", "json_schema", "json_object")

Sleep = Callable[[float], Awaitable[Any]]
# What a rejection says besides its status: fixed words, never the server's.
_STATUS_HINTS = {
    400: ": the server refused the request",
    401: ": check the API key",
    403: ": the key may not use this",
    404: ": check the base URL and the model",
    413: ": the request is too large",
    422: ": the server refused the request",
}
# The SDK's own connection limits (its default client's), on the guarded transport.
HTTP_LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)


@dataclass(frozen=True)
class EndpointConfig:
    """One model on one OpenAI-compatible endpoint.

    `base_url` is what the OpenAI SDK expects, usually ending in `/v1`. `api_key` is the
    resolved secret value; it is left out of `repr` and never written anywhere by the gateway.
    Prices are per million tokens; cached input defaults to the input price. `network` says
    which internal addresses requests may reach (none by default: see `netguard`); it is
    applied on every connection the gateway opens.
    """

    name: str
    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    temperature: float = 0.0
    max_tokens: int = 1024
    timeout: float = 60.0
    max_concurrency: int = 8
    rpm: int | None = None
    tpm: int | None = None
    price_input_per_m: float = 0.0
    price_output_per_m: float = 0.0
    price_cached_input_per_m: float | None = None
    max_retries: int = 4
    network: NetworkPolicy = field(default_factory=NetworkPolicy)

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
        """Price of one answer: cached prompt tokens are a subset of `prompt_tokens`."""
        cached_price = (
            self.price_input_per_m
            if self.price_cached_input_per_m is None
            else self.price_cached_input_per_m
        )
        return (
            (prompt_tokens - cached_tokens) * self.price_input_per_m
            + cached_tokens * cached_price
            + completion_tokens * self.price_output_per_m
        ) / 1_000_000


@dataclass
class Usage:
    """Tokens and cost of the billed answers behind a result; `calls` counts those answers."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0
    calls: int = 0

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return replace(self).add(other)

    def add(self, other: Usage) -> Usage:
        """Add `other` into this one (in place) and return self."""
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached_tokens += other.cached_tokens
        self.cost += other.cost
        self.calls += other.calls
        return self


@dataclass
class CallResult:
    """A successful `Gateway.chat`. `parsed` is the validated JSON when a schema was given.

    `attempts` counts HTTP requests made (0 on a cache hit); `latency` is the wall time of the
    whole call in seconds, retries and backoff included; `model` is the one the server reported.
    """

    content: str
    parsed: Any | None
    usage: Usage
    attempts: int
    cached: bool
    latency: float
    cache_key: str
    model: str


class GatewayError(Exception):
    """A call that ended without a usable answer.

    `usage` holds every billed answer of the failed call (malformed answers, a repair attempt),
    so job totals stay exact. `status` is the last HTTP status, if there was one.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        usage: Usage | None = None,
        attempts: int = 0,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.usage = usage if usage is not None else Usage()
        self.attempts = attempts
        self.status = status

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only fields survive pickling (Celery ships exceptions between processes).
        state = {"usage": self.usage, "attempts": self.attempts, "status": self.status}
        return (self.__class__, (self.kind, self.message), state)

    def __repr__(self) -> str:
        return f"GatewayError(kind={self.kind!r}, message={self.message!r}, status={self.status!r})"


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


def _message_chars(messages: list[dict[str, Any]]) -> int:
    chars = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):  # content parts: count the text ones
            chars += sum(len(p.get("text") or "") for p in content if isinstance(p, dict))
    return chars


def estimate_tokens(messages: list[dict[str, Any]], max_tokens: int) -> int:
    """Tokens to reserve with the rate limiter before a request is sent.

    ceil(characters of message text / 4) + max_tokens. The real count is only known from the
    answer, and limits must be enforced before sending; reserving the whole completion budget
    overestimates, so the limiter errs on the side of never tripping the provider's tpm.
    """
    return math.ceil(_message_chars(messages) / CHARS_PER_TOKEN) + max_tokens


def _with_schema_note(messages: list[dict[str, Any]], schema: dict[str, Any]) -> list[dict]:
    """The messages with the schema spelled out, for servers without json_schema support.

    Appended to the leading system message when there is one (many chat templates accept only
    a single system message, and only first), otherwise a new leading system message.
    """
    note = "Reply with JSON only, matching this schema: " + json.dumps(
        schema, separators=(",", ":"), ensure_ascii=False
    )
    first = messages[0] if messages else None
    if first is not None and first.get("role") == "system" and isinstance(first["content"], str):
        return [{**first, "content": f"{first['content']}\n\n{note}"}, *messages[1:]]
    return [{"role": "system", "content": note}, *messages]


def _retry_after(headers: Any) -> float | None:
    """Seconds asked for by `retry-after-ms` or `Retry-After` (seconds or an HTTP date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            value = float(raw_ms) / 1000
            if math.isfinite(value) and value >= 0:
                return value
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        parsed = email.utils.parsedate_tz(raw)
        if parsed is None:
            return None
        value = email.utils.mktime_tz(parsed) - time.time()
        return max(0.0, value)
    return value if math.isfinite(value) and value >= 0 else None


def _config_problems(config: EndpointConfig) -> list[str]:
    """What makes a config unusable, in words for the person who filled it in."""
    problems = []
    if not config.base_url:
        problems.append("base_url is empty")
    else:
        problems.extend(url_problems(config.base_url))
    if not config.model:
        problems.append("model is empty")
    if config.max_concurrency < 1:
        problems.append("max_concurrency must be at least 1")
    if config.max_retries < 0:
        problems.append("max_retries must not be negative")
    if not config.timeout > 0:
        problems.append("timeout must be positive")
    for name in ("rpm", "tpm"):
        value = getattr(config, name)
        if value is not None and value < 1:
            problems.append(f"{name} must be at least 1 (or empty for no limit)")
    return problems


@dataclass
class _Answer:
    content: str
    model: str
    finish_reason: str | None


@dataclass
class _Failure:
    kind: ErrorKind
    message: str
    retryable: bool
    status: int | None = None
    retry_after: float | None = None
    format_unsupported: bool = False


@dataclass
class _CallState:
    usage: Usage = field(default_factory=Usage)
    attempts: int = 0


class Gateway:
    """Calls to one endpoint. Create and use it inside one event loop; close it when done.

    `limiter` defaults to an in-process `WindowLimiter` from `config.rpm`/`config.tpm` (pass a
    `RedisWindowLimiter` when several processes share the endpoint). `cache` is optional.
    `sleep` and `rng` are injectable so tests can observe backoff without waiting.
    """

    def __init__(
        self,
        config: EndpointConfig,
        *,
        limiter: RateLimiter | None = None,
        cache: ResultCache | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        problems = _config_problems(config)
        if problems:
            raise GatewayError("config", f"endpoint {config.name!r}: " + "; ".join(problems))
        self.config = config
        if limiter is None and (config.rpm is not None or config.tpm is not None):
            limiter = WindowLimiter(config.rpm, config.tpm)
        self._limiter = limiter
        self._cache = cache
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._semaphore = asyncio.Semaphore(config.max_concurrency)
        self._format_mode: FormatMode = "json_schema"
        # The SDK's own HTTP client would follow redirects, honour proxy variables and
        # connect wherever DNS says: ours follows nothing and connects only where
        # `config.network` allows, checked on every connection.
        http_client = openai.DefaultAsyncHttpxClient(
            transport=guarded_transport(config.network, HTTP_LIMITS),
            follow_redirects=False,
            timeout=config.timeout,
        )
        self._client = openai.AsyncOpenAI(
            base_url=config.base_url,
            api_key=config.api_key or "not-needed",
            max_retries=0,  # retries are ours: backoff, Retry-After, usage accounting
            timeout=config.timeout,
            http_client=http_client,
        )
        # The SDK reads OPENAI_CUSTOM_HEADERS, OPENAI_ADMIN_KEY, OPENAI_ORG_ID and
        # OPENAI_PROJECT_ID from the environment and would send them to whatever server this
        # endpoint names: this client sends the endpoint's own key and nothing else of the site.
        self._client._custom_headers = {}
        self._client._ambient_authorizations = frozenset()
        self._client.admin_api_key = None
        self._client.organization = None
        self._client.project = None

    @property
    def format_mode(self) -> FormatMode:
        """How this endpoint is asked for structured output (it steps down on rejection)."""
        return self._format_mode

    async def __aenter__(self) -> Gateway:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.close()

    async def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        schema: dict[str, Any] | None = None,
        schema_name: str = "answer",
        template_version: str = "",
        temperature: float | None = None,
        max_tokens: int | None = None,
        use_cache: bool = True,
    ) -> CallResult:
        """One chat completion; with `schema`, the answer must be JSON matching it.

        `template_version` names the prompt template that produced `messages` (part of the cache
        key). `use_cache=False` neither reads nor writes the cache. Raises `GatewayError`.
        A malformed answer gets one repair round-trip before the call fails as "malformed".
        """
        started = time.monotonic()
        temperature = self.config.temperature if temperature is None else temperature
        max_tokens = self.config.max_tokens if max_tokens is None else max_tokens
        key = cache_key(
            model=self.config.model,
            params={"temperature": temperature, "max_tokens": max_tokens},
            template_version=template_version,
            messages=messages,
            schema=schema,
        )
        cache = self._cache if use_cache else None
        hit = self._cache_get(cache, key)
        if hit is not None:
            return CallResult(
                content=hit["content"],
                parsed=hit.get("parsed"),
                usage=Usage(),  # nothing was called, nothing was billed
                attempts=0,
                cached=True,
                latency=time.monotonic() - started,
                cache_key=key,
                model=hit.get("model") or self.config.model,
            )

        state = _CallState()
        request = dict(
            schema=schema,
            schema_name=schema_name,
            temperature=temperature,
            max_tokens=max_tokens,
            state=state,
        )
        answer = await self._complete(messages, **request)
        parsed: Any = None
        if schema is not None:
            try:
                parsed = self._parse(answer, schema, max_tokens)
            except structured.StructuredOutputError as first:
                log.info("endpoint %s: malformed answer, asking for a repair: %s", self, first)
                repair = structured.repair_messages(messages, answer.content, first)
                answer = await self._complete(repair, **request)
                try:
                    parsed = self._parse(answer, schema, max_tokens)
                except structured.StructuredOutputError as second:
                    raise GatewayError(
                        "malformed",
                        f"no usable JSON for the schema, even after a repair attempt: "
                        f"{second.message} (first answer: {first.message})",
                        usage=state.usage,
                        attempts=state.attempts,
                    ) from None

        if cache is not None:
            stored = {"content": answer.content, "parsed": parsed, "model": answer.model}
            self._cache_set(cache, key, stored | {"usage": asdict(state.usage)})
        return CallResult(
            content=answer.content,
            parsed=parsed,
            usage=state.usage,
            attempts=state.attempts,
            cached=False,
            latency=time.monotonic() - started,
            cache_key=key,
            model=answer.model,
        )

    async def list_models(self) -> list[str]:
        """Model ids the endpoint offers (one request, no retries: a "test connection" button)."""
        failure: _Failure | None = None
        async with self._semaphore:
            try:
                page = await self._client.models.list()
            except (openai.OpenAIError, ValueError) as exc:  # raised below, outside `except`
                failure = self._failure_from(exc)
        if failure is not None:
            raise GatewayError(failure.kind, failure.message, attempts=1, status=failure.status)
        return sorted(str(model.id) for model in page.data)

    def __repr__(self) -> str:
        return f"Gateway({self.config.name!r}, model={self.config.model!r})"

    def __str__(self) -> str:
        return self.config.name

    # --- one completion, with retries and response_format negotiation -------------------------

    async def _complete(
        self,
        messages: list[dict[str, Any]],
        *,
        schema: dict[str, Any] | None,
        schema_name: str,
        temperature: float,
        max_tokens: int,
        state: _CallState,
    ) -> _Answer:
        """Get one answer from the endpoint, retrying transient failures.

        Retries 429, 5xx, timeouts, dropped connections and unreadable bodies up to
        `config.max_retries` times. The pause is the server's `retry-after-ms`/`Retry-After`
        when given (plus up to 10% + 10 ms of jitter so waiting callers don't stampede), else
        exponential backoff with full jitter, uniform(0, min(20, 0.5 * 2**n)): full jitter
        spreads a burst of failed callers over the whole interval, which is what relieves an
        overloaded server. Other 4xx are not retried, except a rejected `response_format`:
        the Gateway then steps down json_schema -> json_object -> schema in the prompt for good
        (for this instance) and sends again at once; that does not use up a retry.
        """
        retries = 0
        while True:
            mode = self._format_mode if schema is not None else None
            kwargs = self._request(messages, schema, schema_name, mode, temperature, max_tokens)
            state.attempts += 1
            estimate = estimate_tokens(kwargs["messages"], max_tokens)
            failure = await self._attempt(kwargs, estimate, state)
            if isinstance(failure, _Answer):
                return failure
            if failure.format_unsupported and mode is not None and mode != "prompt":
                self._step_down(mode, failure.message)
                continue
            if failure.retry_after is not None and failure.retry_after > MAX_RETRY_AFTER:
                failure.retryable = False
                failure.message += f" (the server asked to wait {failure.retry_after:.0f} s)"
            if not failure.retryable or retries >= self.config.max_retries:
                suffix = f" (gave up after {retries} retries)" if retries else ""
                raise GatewayError(
                    failure.kind,
                    failure.message + suffix,
                    usage=state.usage,
                    attempts=state.attempts,
                    status=failure.status,
                )
            delay = self._retry_delay(retries, failure.retry_after)
            retries += 1
            log.info(
                "endpoint %s: %s (status %s); retry %d of %d in %.2f s",
                self,
                failure.kind,
                failure.status,
                retries,
                self.config.max_retries,
                delay,
            )
            await self._sleep(delay)

    def _request(
        self,
        messages: list[dict[str, Any]],
        schema: dict[str, Any] | None,
        schema_name: str,
        mode: FormatMode | None,
        temperature: float,
        max_tokens: int,
    ) -> dict[str, Any]:
        # The SDK's `chat.completions.create` walks its typed parameters recursively on
        # every call (~1.8 ms of CPU here with messages and a JSON schema, the largest cost
        # of a judgment at ~300 calls/s); the body is plain JSON already, so it is posted as
        # it is (see `_attempt`).
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": messages,
            "temperature": temperature,
            "max_tokens": max_tokens,
        }
        if schema is None or mode is None:
            return body
        if mode == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema_name, "schema": schema, "strict": False},
            }
        else:  # json_object alone does not tell the model the shape: spell it out
            body["messages"] = _with_schema_note(messages, schema)
            if mode == "json_object":
                body["response_format"] = {"type": "json_object"}
        return body

    def _step_down(self, rejected: FormatMode, reason: str) -> None:
        # Only step down from the mode that was rejected: concurrent calls that saw the same
        # rejection must not skip a level.
        if self._format_mode == rejected:
            self._format_mode = _FORMAT_MODES[_FORMAT_MODES.index(rejected) + 1]
            log.warning(
                "endpoint %s rejected response_format %s (%s); using %s from now on",
                self,
                rejected,
                reason,
                self._format_mode,
            )

    async def _attempt(
        self, kwargs: dict[str, Any], estimated_tokens: int, state: _CallState
    ) -> _Answer | _Failure:
        """One HTTP request under the concurrency cap and the rate limit; its billed usage is
        added to `state` whatever the answer's worth.

        The limiter is acquired inside the semaphore so that admission time is send time
        (acquiring first would let admitted requests pile up behind the semaphore and leave
        in a burst).
        """
        async with self._semaphore:
            if self._limiter is not None:
                await self._limiter.acquire(estimated_tokens)
            try:
                # The SDK's own request path (auth, HTTP, timeouts, errors) without its
                # per-call walk of the typed parameters (see `_request`) and without building
                # typed response objects: the JSON is read as it is (`cast_to=object`).
                completion = await self._client.post(
                    "/chat/completions", body=kwargs, cast_to=object
                )
            except (openai.OpenAIError, ValueError) as exc:
                # Returned, not raised: the caller raises a GatewayError outside any `except`,
                # so the SDK exception (whose request carries the Authorization header) is not
                # attached as __context__.
                return self._failure_from(exc)
        usage = self._usage_of(completion)
        state.usage.add(usage)
        try:
            choice = completion["choices"][0]
            content = choice["message"]["content"]
        except (AttributeError, IndexError, KeyError, TypeError):
            # A 200 that is not a chat completion: a broken server or proxy. Retry it.
            return _Failure("malformed", "the response is not a chat completion", True)
        if usage.calls == 0:
            state.usage.calls += 1  # an answer without a usage report was still an answer
        return _Answer(
            content=content if isinstance(content, str) else "",  # None: a refusal, a tool call
            model=str(completion.get("model") or self.config.model),
            finish_reason=choice.get("finish_reason"),
        )

    def _usage_of(self, completion: Any) -> Usage:
        """Tokens and cost the answer reports; a reported usage means a billed answer."""
        raw = completion.get("usage") if isinstance(completion, dict) else None
        if not isinstance(raw, dict):
            return Usage()
        prompt = int(raw.get("prompt_tokens") or 0)
        completion_tokens = int(raw.get("completion_tokens") or 0)
        details = raw.get("prompt_tokens_details")
        cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
        cost = self.config.cost(prompt, completion_tokens, cached)
        return Usage(prompt, completion_tokens, cached, cost, calls=1)

    def _failure_from(self, exc: Exception) -> _Failure:
        """Classify an SDK exception. Messages are fixed words and the HTTP status: never the
        API key, and never what the server sent, which may be an internal service's page
        (it goes to the debug log, redacted, for the site admin; the 400/422 text is read to
        notice a server without structured output)."""
        if isinstance(exc, openai.APITimeoutError):
            return _Failure("timeout", f"no answer within {self.config.timeout:g} s", True)
        if isinstance(exc, openai.APIConnectionError):
            if blocked_in_chain(exc):
                return _Failure("blocked", BLOCKED_MESSAGE, False)
            cause = type(exc.__cause__).__name__ if exc.__cause__ else "connection error"
            return _Failure("connection", f"could not talk to the server ({cause})", True)
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            server_message = self._redact(_server_message(exc))
            log.debug("endpoint %s: HTTP %s: %s", self, status, server_message[:200])
            retry_after = _retry_after(exc.response.headers)
            if status == 429:
                message = "rate limited by the server (HTTP 429)"
                return _Failure("rate_limited", message, True, status, retry_after)
            if status >= 500:
                message = f"server error (HTTP {status})"
                return _Failure("server_error", message, True, status, retry_after)
            if 300 <= status < 400:
                message = f"the server answered with a redirect (HTTP {status}); redirects are not followed"
                return _Failure("client_error", message, False, status)
            # Servers without structured-output support reject the request (vLLM and others
            # say 400 or 422) and name the parameter; that is a capability, not a bad request.
            rejects_format = status in (400, 422) and any(
                hint in server_message.lower() for hint in _FORMAT_HINTS
            )
            message = f"request rejected (HTTP {status}{_STATUS_HINTS.get(status, '')})"
            return _Failure("client_error", message, False, status, None, rejects_format)
        # A 200 whose body is not JSON (the SDK's parser raised): a broken server or proxy.
        return _Failure("malformed", f"unreadable response ({type(exc).__name__})", True)

    def _retry_delay(self, retry_index: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after + self._rng.uniform(0, 0.1 * retry_after + 0.01)
        return self._rng.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**retry_index))

    def _parse(self, answer: _Answer, schema: dict[str, Any], max_tokens: int) -> Any:
        try:
            value = structured.extract_json(answer.content)
            structured.validate(value, schema)
        except structured.StructuredOutputError as exc:
            if answer.finish_reason == "length":
                raise structured.StructuredOutputError(
                    f"{exc.message} (the answer was cut off at max_tokens={max_tokens})"
                ) from None
            raise
        return value

    def _redact(self, text: str) -> str:
        key = self.config.api_key
        return text.replace(key, "[redacted]") if key else text

    def _cache_get(self, cache: ResultCache | None, key: str) -> dict[str, Any] | None:
        if cache is None:
            return None
        try:
            return cache.get(key)
        except Exception:  # a broken cache must not fail the scoring run
            log.warning("endpoint %s: cache read failed; calling the model", self, exc_info=True)
            return None

    def _cache_set(self, cache: ResultCache, key: str, value: dict[str, Any]) -> None:
        try:
            cache.set(key, value)
        except Exception:
            log.warning("endpoint %s: cache write failed", self, exc_info=True)


def _server_message(exc: openai.APIStatusError) -> str:
    """The error text the server sent (its `error.message` when JSON), at most 500 chars."""
    body = exc.body
    message: Any = None
    if isinstance(body, dict):
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, dict) else error
        if message is None:
            message = json.dumps(body)[:500]
    elif isinstance(body, str) and body.strip():
        message = body
    if not message:
        message = exc.message
    return str(message)[:500]
