"""The types of a view's request, as the middleware and the guards in front of the view
leave it (for the type checker: nothing here runs per request but ``api_user``).

``HtmxMiddleware`` sets ``request.htmx`` on every request; ``login_required`` (pages) and
``IsAuthenticated``, the API's default permission, let only a signed-in user through, so
behind them ``request.user`` is a ``User``, never ``AnonymousUser``."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request


class HtmxRequest(HttpRequest):
    htmx: HtmxDetails


class SignedInRequest(HtmxRequest):
    """The request of a ``login_required`` page view."""

    user: User


def api_user(request: Request) -> User:
    """The signed-in user of an API request (``IsAuthenticated`` turned anyone else away)."""
    user = request.user
    if not user.is_authenticated:
        raise NotAuthenticated()
    return user
