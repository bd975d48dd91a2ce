"""The one mapping of ``ApplicationError`` for pages and htmx (the API's is
``annotation.api_errors``). A view handles an error itself only where it has something
better to show (a form re-rendered with its errors); any other error a view lets escape
is shown here: to htmx as a message swapped into the page's message area, to a page as a
message on the page the person came from, or, with nowhere to go back to, as a page in
the studio's layout with the error's status."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme

from annotation.errors import ApplicationError


class ApplicationErrorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not isinstance(exc, ApplicationError) or request.path.startswith("/api/"):
            return None
        if getattr(request, "htmx", False):
            response = render(request, "_flash.html", {"error": exc.message})
            response["HX-Retarget"] = "#flash"
            response["HX-Reswap"] = "innerHTML"
            return response
        back = request.headers.get("referer", "")
        if request.method == "POST" and url_has_allowed_host_and_scheme(
            back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            messages.error(request, exc.message)
            return redirect(back)
        return render(request, "error.html", {"error": exc.message}, status=exc.status_code)
