"""One completion from an OpenAI-compatible endpoint, the way the gateway sends it: the request
body with the structured-output mode the server accepts, one HTTP request at a time under the
concurrency cap and the rate limit, retries with backoff for rate limits, server errors,
timeouts and dropped connections, and failures classified into fixed words that never carry
the API key or the server's text. `Gateway` builds on `RetryingCalls` for all of this.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx2
import openai

from scoring.engine.direct_http import DirectClient, TransportError
from scoring.engine.gateway_types import EndpointConfig, ErrorKind, GatewayError, Usage
from scoring.engine.netguard import BLOCKED_MESSAGE, blocked_in_chain
from scoring.engine.ratelimit import RateLimiter

__all__ = ["FormatMode", "RetryingCalls", "Sleep", "estimate_tokens"]

log = logging.getLogger(__name__)

# Exponential backoff with full jitter: retry n (0-based) sleeps uniform(0, min(CAP, BASE * 2**n)).
BACKOFF_BASE = 0.5
BACKOFF_CAP = 20.0
# A server asking for a longer pause than this is not retried: the call fails now and the job
# runner decides, instead of a worker sleeping for minutes holding a concurrency slot.
MAX_RETRY_AFTER = 120.0
# Rough size of a token in characters for English text (used only for rate-limit estimates).
CHARS_PER_TOKEN = 4

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


def _with_schema_note(
    messages: list[dict[str, Any]], schema: dict[str, Any]
) -> list[dict[str, Any]]:
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


def _retry_after(headers: Mapping[str, str]) -> float | None:
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


@dataclass
class _Answer:
    content: str
    model: str
    finish_reason: str | None
    # (token text, log-probability) of the first generated token's most likely tokens, when
    # they were asked for and the server sent them; None otherwise.
    top_logprobs: list[tuple[str, float]] | None = None


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


class RetryingCalls:
    """The HTTP side of a `Gateway`: one completion with retries, the concurrency cap, the rate
    limit and response_format negotiation. `Gateway.__init__` sets the attributes below.
    """

    config: EndpointConfig
    _client: openai.AsyncOpenAI
    # The direct client posts the completions when the gateway was built with the "direct"
    # transport; None: the SDK's client posts them (see `_attempt`).
    _direct: DirectClient | None
    _limiter: RateLimiter | None
    _semaphore: asyncio.Semaphore
    _sleep: Sleep
    _rng: random.Random
    _format_mode: FormatMode

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
        top_logprobs: int | None = None,
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
            if top_logprobs is not None:
                kwargs["logprobs"] = True
                kwargs["top_logprobs"] = top_logprobs
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
            if self._direct is not None:
                completion = await self._post_direct(self._direct, kwargs)
            else:
                completion = await self._post_sdk(kwargs)
        if isinstance(completion, _Failure):
            return completion
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
            top_logprobs=_first_top_logprobs(choice) if "logprobs" in kwargs else None,
        )

    async def _post_sdk(self, kwargs: dict[str, Any]) -> Any:
        """The completion's JSON as the SDK's client gets it, or a `_Failure`."""
        try:
            # The SDK's own request path (auth, HTTP, timeouts, errors) without its per-call
            # walk of the typed parameters (see `_request`) and without building typed
            # response objects: the JSON is read as it is (`cast_to=object`).
            return await self._client.post("/chat/completions", body=kwargs, cast_to=object)
        except (openai.OpenAIError, ValueError) as exc:
            # Returned, not raised: the caller raises a GatewayError outside any `except`,
            # so the SDK exception (whose request carries the Authorization header) is not
            # attached as __context__.
            return self._failure_from(exc)

    async def _post_direct(self, direct: DirectClient, kwargs: dict[str, Any]) -> Any:
        """The same request as `_post_sdk` through the direct client: the same body bytes
        (encoded as the SDK encodes them), the same path, and the answer read as the SDK reads
        it for `cast_to=object`: a 2xx with a JSON content type is its JSON (a body that is
        not JSON fails as "malformed"), with another content type its text; any other status
        is classified by `_status_failure`, a failed exchange by `_transport_failure`."""
        try:
            body = json.dumps(
                kwargs, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode()
            answer = await direct.post_json("/chat/completions", body)
        except TransportError as exc:
            return self._transport_failure(exc)
        except ValueError as exc:
            return self._failure_from(exc)
        if not 200 <= answer.status < 300:
            return self._status_failure(answer.status, answer.headers, answer.text())
        content_type = answer.headers.get("content-type", "*").split(";")[0]
        if not content_type.endswith("json"):
            return answer.text()
        try:
            return json.loads(answer.body)
        except ValueError as exc:
            return self._failure_from(exc)

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
        """Classify an SDK exception (or a body that is not JSON). Messages are fixed words
        and the HTTP status: never the API key, and never what the server sent (see
        `_status_failure`)."""
        if isinstance(exc, openai.APITimeoutError):
            return self._timeout_failure()
        if isinstance(exc, openai.APIConnectionError):
            if blocked_in_chain(exc):
                return _Failure("blocked", BLOCKED_MESSAGE, False)
            cause = type(exc.__cause__).__name__ if exc.__cause__ else "connection error"
            return _connection_failure(cause)
        if isinstance(exc, openai.APIStatusError):
            return self._status_failure(exc.status_code, exc.response.headers, _text(exc))
        # A 200 whose body is not JSON (the SDK's parser raised): a broken server or proxy.
        return _Failure("malformed", f"unreadable response ({type(exc).__name__})", True)

    def _transport_failure(self, exc: TransportError) -> _Failure:
        """A direct request without an answer, worded as `_failure_from` words the SDK's
        exception for the same event (`exc.name` is the httpx error's name)."""
        if exc.timeout:
            return self._timeout_failure()
        if exc.blocked:
            return _Failure("blocked", BLOCKED_MESSAGE, False)
        return _connection_failure(exc.name)

    def _timeout_failure(self) -> _Failure:
        return _Failure("timeout", f"no answer within {self.config.timeout:g} s", True)

    def _status_failure(self, status: int, headers: Mapping[str, str], text: str) -> _Failure:
        """Classify a non-2xx answer from its status, headers and body text, whichever client
        got it. The message is fixed words and the status, never the server's text, which
        may be an internal service's page (it goes to the debug log, redacted, for the site
        admin; the 400/422 text is read to notice a server without structured output)."""
        server_message = self._redact(_server_message(status, text))
        log.debug("endpoint %s: HTTP %s: %s", self, status, server_message[:200])
        retry_after = _retry_after(headers)
        if status == 429:
            message = "rate limited by the server (HTTP 429)"
            return _Failure("rate_limited", message, True, status, retry_after)
        if status >= 500:
            message = f"server error (HTTP {status})"
            return _Failure("server_error", message, True, status, retry_after)
        if 300 <= status < 400:
            message = (
                f"the server answered with a redirect (HTTP {status}); redirects are not followed"
            )
            return _Failure("client_error", message, False, status)
        # Servers without structured-output support reject the request (vLLM and others
        # say 400 or 422) and name the parameter; that is a capability, not a bad request.
        rejects_format = status in (400, 422) and any(
            hint in server_message.lower() for hint in _FORMAT_HINTS
        )
        message = f"request rejected (HTTP {status}{_STATUS_HINTS.get(status, '')})"
        return _Failure("client_error", message, False, status, None, rejects_format)

    def _retry_delay(self, retry_index: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after + self._rng.uniform(0, 0.1 * retry_after + 0.01)
        return self._rng.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**retry_index))

    def _redact(self, text: str) -> str:
        key = self.config.api_key
        return text.replace(key, "[redacted]") if key else text


def _first_top_logprobs(choice: Any) -> list[tuple[str, float]] | None:
    """The ``top_logprobs`` of the first generated token, in the chat-completions shape
    (``choices[0].logprobs.content[0].top_logprobs``: ``{"token", "logprob"}`` objects);
    None when the server sent none or sent something else."""
    try:
        first = choice["logprobs"]["content"][0]
        entries = first["top_logprobs"]
        pairs = [(entry["token"], entry["logprob"]) for entry in entries]
    except (IndexError, KeyError, TypeError):
        return None
    if not all(
        isinstance(token, str) and isinstance(lp, int | float) and not isinstance(lp, bool)
        for token, lp in pairs
    ):
        return None
    return [(token, float(lp)) for token, lp in pairs]


def _connection_failure(cause: str) -> _Failure:
    return _Failure("connection", f"could not talk to the server ({cause})", True)


def _text(exc: openai.APIStatusError) -> str:
    """The body of the SDK's error answer (read before the SDK raised)."""
    try:
        return exc.response.text
    except httpx2.ResponseNotRead:
        return ""


def _server_message(status: int, text: str) -> str:
    """The error text the server sent (its `error.message` when JSON), at most 500 chars:
    read from the body as the SDK reads it into `APIStatusError.body` and `.message`."""
    text = text.strip()
    sdk_message = f"Error code: {status}"
    body: Any = text
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):  # not JSON: the text itself (as the SDK keeps it)
        pass
    else:
        error = body.get("error", body) if isinstance(body, dict) else None
        detail = error.get("message") if isinstance(error, dict) else None
        if isinstance(detail, str) and detail:
            sdk_message += f" - {detail}"
    if isinstance(body, dict):  # the SDK keeps the "error" member as the exception's body
        body = body.get("error", body)
    message: Any = None
    if isinstance(body, dict):
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, dict) else error
        if message is None:
            message = json.dumps(body)[:500]
    elif isinstance(body, str) and body.strip():
        message = body
    if not message:
        message = sdk_message
    return str(message)[:500]
