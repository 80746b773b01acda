from __future__ import annotations

import math
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import Resolver404, resolve
from django_htmx.http import HttpResponseClientRedirect

from .database import RETRY_AFTER_S, Problem, problem
from .login_throttle import address, failed_logins
from .views.common import BadQuery, error_response, is_api
from .views.errors import unreadable
from .workspace import WorkspaceMissing

# Routes that answer without a login: the login page, and admin, which asks for its own.
# Static files never get here: WhiteNoise answers them first.
OPEN_VIEWS = {"login"}
OPEN_APPS = {"admin"}


def is_open(request: HttpRequest) -> bool:
    """Decided on the route Django resolves (`path_info`), never on the full path: a sub-path
    (`SCRIPT_NAME`, set by a proxy or in a header) must neither open nor close a route."""
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return False
    return match.url_name in OPEN_VIEWS or bool(OPEN_APPS & set(match.app_names))


def throttle_logins(get_response: Callable[[HttpRequest], HttpResponse]):
    """A login sent while its address is waiting after failed ones is refused unread (429)."""

    def middleware(request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and _is_login(request):
            wait = failed_logins.wait(address(request))
            if wait > 0:
                seconds = math.ceil(wait)
                response = error_response(
                    request,
                    429,
                    f"Too many failed logins from your address: wait {seconds} s, then try "
                    "again. Each failure in a row doubles the wait, up to 5 minutes.",
                )
                response["Retry-After"] = str(seconds)
                return response
        return get_response(request)

    return middleware


def _is_login(request: HttpRequest) -> bool:
    """The login form, this site's or admin's (both are routes named `login`)."""
    try:
        return resolve(request.path_info).url_name == "login"
    except Resolver404:
        return False


def require_login(get_response: Callable[[HttpRequest], HttpResponse]):
    """With TUNER_REQUIRE_LOGIN, every page, partial and API route needs a logged-in user."""

    def middleware(request: HttpRequest) -> HttpResponse:
        if not settings.TUNER_REQUIRE_LOGIN or is_open(request):
            return get_response(request)
        try:
            authenticated = request.user.is_authenticated  # reads the session: the database
        except DatabaseError as exc:
            if (found := problem(exc)) is None:
                raise
            return database_response(request, found)
        if not authenticated:
            if is_api(request):
                return error_response(request, 401, "Log in first: this dashboard requires it.")
            login = redirect_to_login(request.get_full_path())
            if request.headers.get("HX-Request"):
                # A fragment request must not swap the login page into the page: go there.
                return HttpResponseClientRedirect(login["Location"])
            return login
        return get_response(request)

    return middleware


class ErrorPages:
    """Turns the exceptions views raise on bad input into clear 400 and 503 pages."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if isinstance(exc, Http404):
            # Here rather than handler404 so DEBUG answers JSON routes with JSON too.
            message = exc.args[0] if exc.args and isinstance(exc.args[0], str) else "Nothing here."
            return error_response(request, 404, message)
        if isinstance(exc, BadQuery):
            return error_response(request, 400, str(exc))
        if (refused := unreadable(exc)) is not None:  # here too, so DEBUG says it as well
            return error_response(request, 400, refused)
        if (found := problem(exc)) is not None:
            return database_response(request, found)
        if isinstance(exc, WorkspaceMissing):
            message = exc.message()
            if is_api(request):
                return error_response(request, 503, message)
            return render(request, "workspace_missing.html", {"message": message}, status=503)
        return None


def _typed(request: HttpRequest) -> list[tuple[str, list[str]]] | None:
    """A form's fields to show again and resend; None where there is none, or where it holds
    a secret (a password, or what its view marked sensitive), which is never echoed."""
    if request.method != "POST":
        return None
    sensitive = getattr(request, "sensitive_post_parameters", ())
    typed = [(k, v) for k, v in request.POST.lists() if k != "csrfmiddlewaretoken"]
    if sensitive == "__ALL__" or any(k in sensitive or "password" in k.lower() for k, _ in typed):
        return None
    return typed


def database_response(request: HttpRequest, found: Problem) -> HttpResponse:
    """503 saying what is wrong with the database. A form sent meanwhile is shown again with
    what was typed, to send again: nothing typed is lost, nothing is half-saved."""
    if is_api(request):
        response = error_response(request, 503, found.message)
    else:
        typed = _typed(request)
        context = {"message": found.message, "busy": found.busy, "typed": typed}
        response = render(request, "database_problem.html", context, status=503)
    if found.busy:
        response["Retry-After"] = str(RETRY_AFTER_S)
    return response
