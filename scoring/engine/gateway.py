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

The types it takes and returns are in `gateway_types`, the result cache in `gateway_cache`,
and one HTTP completion with its retries and failure classification in `gateway_retry`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import asdict
from typing import Any, Literal, TypedDict

import httpx2
import openai

from scoring.engine import structured
from scoring.engine.direct_http import DirectClient, header_safe
from scoring.engine.gateway_cache import ResultCache, cache_key
from scoring.engine.gateway_retry import (
    FormatMode,
    RetryingCalls,
    Sleep,
    _Answer,
    _CallState,
    _Failure,
)
from scoring.engine.gateway_types import (
    CallResult,
    EndpointConfig,
    GatewayError,
    Usage,
    _config_problems,
)
from scoring.engine.netguard import guarded_transport
from scoring.engine.ratelimit import RateLimiter, WindowLimiter

__all__ = ["TRANSPORTS", "Gateway", "Transport"]

log = logging.getLogger(__name__)

# The SDK's own connection limits (its default client's), on the guarded transport.
HTTP_LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)

# Who posts the chat completions: "direct", the lean client of `direct_http` (the SDK's
# connection pool costs more CPU than judging at a hundred calls in flight), or "sdk", the
# OpenAI SDK's own client, the reference the direct one is tested against. Everything else
# (list_models) always goes through the SDK.
Transport = Literal["direct", "sdk"]
TRANSPORTS: tuple[Transport, ...] = ("direct", "sdk")


class _Request(TypedDict):
    """What `RetryingCalls._complete` takes besides the messages: the same for the first
    request and its repair."""

    schema: dict[str, Any] | None
    schema_name: str
    temperature: float
    max_tokens: int
    state: _CallState
    top_logprobs: int | None


class Gateway(RetryingCalls):
    """Calls to one endpoint. Create and use it inside one event loop; close it when done.

    `limiter` defaults to an in-process `WindowLimiter` from `config.rpm`/`config.tpm` (pass a
    `RedisWindowLimiter` when several processes share the endpoint). `cache` is optional.
    `sleep` and `rng` are injectable so tests can observe backoff without waiting.
    `transport` picks the client that posts the completions (see `Transport`); a key that
    cannot go into a header as it is leaves them with the SDK, which refuses it its own way.
    """

    def __init__(
        self,
        config: EndpointConfig,
        *,
        limiter: RateLimiter | None = None,
        cache: ResultCache | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        transport: Transport = "direct",
    ) -> None:
        problems = _config_problems(config)
        if transport not in TRANSPORTS:
            problems.append(f"transport must be one of {', '.join(TRANSPORTS)}")
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
        api_key = config.api_key or "not-needed"
        self._direct = (
            DirectClient(
                config.base_url,
                api_key=api_key,
                policy=config.network,
                timeout=config.timeout,
                user_agent=self._client.user_agent,
            )
            if transport == "direct" and header_safe(api_key)
            else None
        )

    @property
    def format_mode(self) -> FormatMode:
        """How this endpoint is asked for structured output (it steps down on rejection)."""
        return self._format_mode

    async def __aenter__(self) -> Gateway:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connections (in the event loop that used them)."""
        if self._direct is not None:
            await self._direct.aclose()
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
        top_logprobs: int | None = None,
    ) -> CallResult:
        """One chat completion; with `schema`, the answer must be JSON matching it.

        `template_version` names the prompt template that produced `messages` (part of the cache
        key). `use_cache=False` neither reads nor writes the cache. Raises `GatewayError`.
        A malformed answer gets one repair round-trip before the call fails as "malformed".
        `top_logprobs` (0-20) asks for the log-probabilities of that many most likely first
        tokens (`logprobs: true`); they come back in `CallResult.top_logprobs`, None when the
        server sent none (the caller decides what that means).
        """
        started = time.monotonic()
        temperature = self.config.temperature if temperature is None else temperature
        max_tokens = self.config.max_tokens if max_tokens is None else max_tokens
        params: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens}
        if top_logprobs is not None:
            params["top_logprobs"] = top_logprobs
        key = cache_key(
            model=self.config.model,
            params=params,
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
                top_logprobs=_pairs(hit.get("top_logprobs")),
            )

        state = _CallState()
        request = _Request(
            schema=schema,
            schema_name=schema_name,
            temperature=temperature,
            max_tokens=max_tokens,
            state=state,
            top_logprobs=top_logprobs,
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
            if answer.top_logprobs is not None:
                stored["top_logprobs"] = answer.top_logprobs
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
            top_logprobs=answer.top_logprobs,
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


def _pairs(stored: Any) -> list[tuple[str, float]] | None:
    """Cached top_logprobs (JSON turned the pairs into lists) as pairs again."""
    if stored is None:
        return None
    return [(str(token), float(logprob)) for token, logprob in stored]
