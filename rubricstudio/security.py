"""What sits around authorization: the Content-Security-Policy header and the API throttles.

The policy and the rates are read from settings on every request (not copied at import
time), so a deployment changes them through the environment and a test through
``settings`` overrides.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.cache import BaseCache, caches
from django.http import HttpRequest, HttpResponse
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle


class ContentSecurityPolicyMiddleware:
    """Adds ``settings.CONTENT_SECURITY_POLICY`` to every response that has none of its own.

    The studio's pages load scripts and styles from ``/static/`` only: no inline
    ``<script>``, no inline event handlers, no ``style`` attributes, and htmx runs with
    ``allowEval`` off (``templates/base.html``). ``tests/browser/test_csp.py`` visits the
    pages with a violation listener.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = settings.CONTENT_SECURITY_POLICY
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response


class _RatesFromSettings:
    """A DRF rate throttle whose rate (``settings.API_THROTTLE_RATES[scope]``; None turns
    it off) and cache (``settings.API_THROTTLE_CACHE``: Redis when the deployment has
    one, so every web process counts together) are looked up per request."""

    scope: str

    @property
    def cache(self) -> BaseCache:
        return caches[settings.API_THROTTLE_CACHE]

    def get_rate(self) -> str | None:
        return settings.API_THROTTLE_RATES.get(self.scope)


# The stubs declare SimpleRateThrottle.cache a writable attribute; DRF only reads it, and
# here it is a property (looked up per request), hence the override ignores.
class AnonThrottle(_RatesFromSettings, AnonRateThrottle):  # type: ignore[override]
    """Requests without credentials, per client address (the schema and the docs)."""

    scope = "anon"


class UserThrottle(_RatesFromSettings, UserRateThrottle):  # type: ignore[override]
    """Requests of a signed-in user or a token, per user."""

    scope = "user"
