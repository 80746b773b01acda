"""Helpers every view shares: the typed request, JSON responses, error pages, parameters."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.middleware import HtmxDetails

from tuner_site.serializers import dumps


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


class BadQuery(ValueError):
    """A query parameter value outside what a view accepts; the message says what is."""


def is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith("/api/")


def json_response(data: object, status: int = 200) -> HttpResponse:
    return HttpResponse(dumps(data), status=status, content_type="application/json")


def error_response(request: HttpRequest, status: int, message: str) -> HttpResponse:
    if is_api(request):
        return json_response({"error": message}, status=status)
    return render(request, "error.html", {"status": status, "message": message}, status=status)


def int_param(request: HttpRequest, name: str, default: int, minimum: int = 1) -> int:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadQuery(
            f"{name} must be a whole number of at least {minimum}, not {raw!r}."
        ) from None
    if value < minimum:
        raise BadQuery(f"{name} must be a whole number of at least {minimum}, not {raw!r}.")
    return value


def choice_param(
    request: HttpRequest, name: str, choices: list[str] | tuple[str, ...]
) -> str | None:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return None
    if raw not in choices:
        accepted = ", ".join(choices) or "(none in this workspace)"
        raise BadQuery(f"{name} must be one of: {accepted}. Got {raw!r}.")
    return raw
