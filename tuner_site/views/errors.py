from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse

from .common import error_response


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    message = "Nothing here."
    if exception is not None and exception.args and isinstance(exception.args[0], str):
        message = exception.args[0]
    return error_response(request, 404, message)


def unreadable(exc: BaseException | None) -> str | None:
    """What to say of a request Django would not read: too large, or too many fields."""
    if isinstance(exc, RequestDataTooBig):
        mb = settings.DATA_UPLOAD_MAX_MEMORY_SIZE / 2**20
        return f"The request's body is over {mb:g} MB, more than any form here takes: send less."
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        most = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        return f"The request sends more than {most:,} fields, more than any form here takes."
    return None


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    message = unreadable(exception) or "The request could not be read: it is malformed."
    return error_response(request, 400, message)


def server_error(request: HttpRequest) -> HttpResponse:
    return error_response(request, 500, "Something went wrong on our side. It has been logged.")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return error_response(
        request,
        403,
        "The form's security token (CSRF) is missing or stale: reload the page and try again. "
        "Scripts send the csrftoken cookie's value in an X-CSRFToken header.",
    )
