"""From a JudgeEndpoint row to a Gateway: the base URL and API key of the endpoint's
provider (the key read from the environment at call time), the site's network policy,
rate limits shared through Redis when there is one, and the result cache."""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from annotation.errors import ApplicationError
from scoring.engine.gateway import Gateway
from scoring.engine.gateway_cache import MemoryCache, ResultCache
from scoring.engine.gateway_types import EndpointConfig
from scoring.engine.netguard import NetworkPolicy
from scoring.engine.ratelimit import RateLimiter, RedisWindowLimiter, WindowLimiter
from scoring.judges.models import JudgeEndpoint, LLMProvider


@cache
def _policy(entries: tuple[str, ...]) -> NetworkPolicy:
    try:
        return NetworkPolicy.parse(entries)
    except ValueError as exc:
        raise ImproperlyConfigured(f"LLM_PRIVATE_HOSTS: {exc}") from None


def network_policy() -> NetworkPolicy:
    """The site's allowlist of internal addresses LLM requests may reach (LLM_PRIVATE_HOSTS);
    everything else internal is refused on every connection."""
    return _policy(tuple(settings.LLM_PRIVATE_HOSTS))


def key_variable_allowed(name: str) -> bool:
    """Only variables the site admin set aside for LLM keys may be named, never the studio's
    own secrets (SECRET_KEY, DATABASE_URL…), even by a provider."""
    return name in settings.LLM_KEY_ENV_ALLOWED or (
        name.startswith(settings.LLM_KEY_ENV_PREFIX)
        and len(name) > len(settings.LLM_KEY_ENV_PREFIX)
    )


def provider_usable(provider: LLMProvider, project_id: int) -> str | None:
    """Why the endpoints of ``project_id`` may not use ``provider`` now, or None."""
    if not provider.enabled:
        return f"The provider “{provider.name}” is disabled by the site admin."
    limited = list(provider.projects.values_list("pk", flat=True))
    if limited and project_id not in limited:
        return f"The provider “{provider.name}” is not available to this project."
    if provider.api_key_env and not key_variable_allowed(provider.api_key_env):
        return (
            f"The provider “{provider.name}” names {provider.api_key_env}, which is not a "
            "variable LLM keys may be read from (LLM_KEY_ENV_PREFIX, LLM_KEY_ENV_ALLOWED)."
        )
    return None


def endpoint_config(endpoint: JudgeEndpoint) -> EndpointConfig:
    """The endpoint's settings with its key's value, which lives only in this object (its
    repr hides it) for the length of a job. The key is the provider's and goes only to the
    provider's base URL, read from the provider now (not from the endpoint's copy); an
    endpoint without a provider sends no key."""
    key = None
    base_url = endpoint.base_url
    provider = endpoint.provider
    if provider is not None:
        refusal = provider_usable(provider, endpoint.project_id)
        if refusal:
            raise ApplicationError(refusal)
        base_url = provider.base_url
        if provider.api_key_env:
            key = os.environ.get(provider.api_key_env)
            if not key:
                raise ApplicationError(
                    f"The environment variable {provider.api_key_env} (the API key of the "
                    f"provider “{provider.name}”) is not set where the studio runs."
                )
    return EndpointConfig(
        name=endpoint.name,
        base_url=base_url,
        model=endpoint.model,
        api_key=key,
        temperature=endpoint.temperature,
        max_tokens=endpoint.max_tokens,
        timeout=endpoint.timeout,
        max_concurrency=max(1, endpoint.max_concurrency // settings.LLM_PROCESS_SHARE),
        rpm=endpoint.rpm,
        tpm=endpoint.tpm,
        price_input_per_m=endpoint.price_input_per_m,
        price_output_per_m=endpoint.price_output_per_m,
        network=network_policy(),
    )


class RedisCache:
    """Successful results shared by every worker, kept for LLM_CACHE_TTL seconds."""

    def __init__(self, client: Any, ttl: int) -> None:
        self.client, self.ttl = client, ttl

    def get(self, key: str) -> dict[str, Any] | None:
        raw = self.client.get(f"rubricstudio:llmcache:{key}")
        return None if raw is None else json.loads(raw)

    def set(self, key: str, value: dict[str, Any]) -> None:
        self.client.set(f"rubricstudio:llmcache:{key}", json.dumps(value), ex=self.ttl)


class ServerCache:
    """The gateway's cache key names the model, not the server: two deployments serving a
    model under the same name must not share answers, so keys are scoped by base URL."""

    def __init__(self, inner: ResultCache, base_url: str) -> None:
        self.inner = inner
        self.scope = hashlib.sha256(base_url.rstrip("/").encode()).hexdigest()[:16]

    def get(self, key: str) -> dict[str, Any] | None:
        return self.inner.get(f"{self.scope}:{key}")

    def set(self, key: str, value: dict[str, Any]) -> None:
        self.inner.set(f"{self.scope}:{key}", value)


@cache
def _redis(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url)


@cache
def _memory_cache() -> MemoryCache:
    return MemoryCache()


# A request reaches the server some time after the limiter admits it (connection set-up,
# the SDK building it while others hold the CPU); counting a window one second longer than
# the provider's minute keeps the provider's own count under the limit.
RATE_WINDOW = 60.0
RATE_WINDOW_MARGIN = 1.0


def limiter_for(endpoint: JudgeEndpoint) -> RateLimiter | None:
    """With Redis, one window shared by every worker process of the endpoint; without it
    (the embedded single-worker setup) a window for this job's event loop (an asyncio
    limiter belongs to one loop)."""
    if not endpoint.rpm and not endpoint.tpm:
        return None
    window = RATE_WINDOW + RATE_WINDOW_MARGIN
    if settings.LLM_REDIS_URL:
        return RedisWindowLimiter(
            _redis(settings.LLM_REDIS_URL),
            f"rubricstudio:rl:{endpoint.pk}",
            endpoint.rpm,
            endpoint.tpm,
            window=window,
        )
    return WindowLimiter(endpoint.rpm, endpoint.tpm, window=window)


def gateway_for(endpoint: JudgeEndpoint, *, limiter: RateLimiter | None = None) -> Gateway:
    cache_backend: ResultCache = (
        RedisCache(_redis(settings.LLM_REDIS_URL), settings.LLM_CACHE_TTL)
        if settings.LLM_REDIS_URL
        else _memory_cache()
    )
    config = endpoint_config(endpoint)
    return Gateway(
        config,
        limiter=limiter if limiter is not None else limiter_for(endpoint),
        cache=ServerCache(cache_backend, config.base_url),
        transport=settings.LLM_TRANSPORT,
    )
