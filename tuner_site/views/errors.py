from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from .common import error_response


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    message = "Nothing here."
    if exception is not None and exception.args and isinstance(exception.args[0], str):
        message = exception.args[0]
    return error_response(request, 404, message)


def server_error(request: HttpRequest) -> HttpResponse:
    return error_response(request, 500, "Something went wrong on our side. It has been logged.")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return error_response(
        request,
        403,
        "The form's security token (CSRF) is missing or stale: reload the page and try again. "
        "Scripts send the csrftoken cookie's value in an X-CSRFToken header.",
    )
