"""Chat completions: how the fake server answers ``POST /v1/chat/completions``.

Each request is validated, counted, assigned one outcome (an answer or a simulated fault)
from the seeded draws, delayed by the configured latency, and answered with a scripted rule,
the offline judge's answer, or a schema-shaped document, with token usage in the reply. A
one-token request for log-probabilities (``logprobs: true``, ``max_tokens: 1``) is answered
with one token and the ``top_logprobs`` of a scripted logprob rule or of the offline judge
(``fakellm.logprobs``). The last requests are kept for tests to read (``recent_requests``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import itertools
import json
import random
import threading
import time
from typing import Any

from fakellm import judge, logprobs
from fakellm.config import FakeConfig
from fakellm.protocol import _error_body, _Result
from fakellm.schema import _phrase, _rng_for, _SchemaFaker

OUTCOMES = ("ok", "429", "500", "timeout", "malformed", "400")
"""Every chat request ends in exactly one of these; ``400`` is a request fakellm rejected."""
RECENT = 100
"""How many of the last well-formed chat request bodies are kept (``recent_requests``)."""


class _Stats:
    """Counters touched on every request; mutated only under the server's lock."""

    __slots__ = (
        "arrivals",
        "by_model",
        "by_outcome",
        "max_in_flight",
        "recent",
        "requests",
        "usage",
    )

    def __init__(self) -> None:
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT)
        self.requests = 0
        self.by_outcome = dict.fromkeys(OUTCOMES, 0)
        self.arrivals: list[float] = []
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0}
        self.max_in_flight = 0
        self.by_model: dict[str, int] = {}


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


class _ChatCompletions:
    """The chat-completions endpoint of :class:`fakellm.server.FakeLLMServer`."""

    # Set by the server; read and updated here under ``_lock``.
    _config: FakeConfig
    _lock: threading.Lock
    _stats: _Stats
    _in_flight: int
    _seen_prefixes: set[str]
    _fault_rng: random.Random
    _jitter_rng: random.Random
    _ids: itertools.count[int]

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
        one_token = request.get("logprobs") is True and request.get("max_tokens") == 1
        top = request.get("top_logprobs", 0)
        if request.get("logprobs") is True and (
            not isinstance(top, int) or isinstance(top, bool) or not 0 <= top <= 20
        ):
            return self._reject(arrival, "'top_logprobs' must be an integer from 0 to 20")

        with self._lock:
            stats = self._stats
            stats.recent.append(request)
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
            first_token = self._first_token(config, request, text, top) if one_token else None
            if first_token is not None:
                content = first_token["token"]
            else:
                try:
                    content = self._reply(config, request, text)
                except (ValueError, KeyError, IndexError, TypeError) as exc:
                    with self._lock:  # it was not answered as drawn: count it as rejected
                        self._stats.by_outcome[outcome] -= 1
                        self._stats.by_outcome["400"] += 1
                    message = f"fakellm cannot answer this response_format: {exc}"
                    return 400, _error_body(message, "invalid_request_error"), None
            if outcome == "malformed":
                if first_token is None:
                    content = _malformed(content)
                else:  # a server that dropped what was asked for
                    first_token = None
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
                        "logprobs": None
                        if first_token is None
                        else {"content": [first_token], "refusal": None},
                        "finish_reason": "stop" if first_token is None else "length",
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
    def _first_token(
        config: FakeConfig, request: dict[str, Any], text: str, top: int
    ) -> dict[str, Any]:
        """The one generated token with its log-probability and the ``top`` most likely
        (chat-completions shape): a logprob rule's, the offline judge's, else a plain word
        the server is sure of."""
        follow = config.follows_injections(str(request.get("model")))
        ranked = logprobs.answer(config.logprob_rules, text, follow_injections=follow)
        if ranked is None:
            word = _phrase(_rng_for(hashlib.sha256(text.encode()).digest(), "$token"), 1, 1)
            ranked = [(word, 0.0)]

        def entry(token: str, logprob: float) -> dict[str, Any]:
            return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

        chosen = entry(*ranked[0])
        chosen["top_logprobs"] = [entry(t, lp) for t, lp in ranked[:top]]
        return chosen

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
                    judged = judge.answer(
                        str(spec.get("name", "")),
                        schema,
                        text,
                        follow_injections=config.follows_injections(str(request.get("model"))),
                    )
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
