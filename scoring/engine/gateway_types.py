"""What the LLM gateway takes and hands back: the endpoint's settings and prices
(`EndpointConfig`, with the checks that make a config usable), the tokens and cost of billed
answers (`Usage`), a successful call (`CallResult`) and a call that ended without a usable
answer (`GatewayError`, with its kind and the usage it still cost).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from scoring.engine.netguard import NetworkPolicy, url_problems

__all__ = [
    "CallResult",
    "EndpointConfig",
    "ErrorKind",
    "GatewayError",
    "Usage",
]

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
    `top_logprobs`: (token text, log-probability) of the first generated token's most likely
    tokens, when the call asked for them and the server sent them (else None).
    """

    content: str
    parsed: Any | None
    usage: Usage
    attempts: int
    cached: bool
    latency: float
    cache_key: str
    model: str
    top_logprobs: list[tuple[str, float]] | None = None


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
