"""Helpers every view shares: the workspace, JSON responses, and error pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.middleware import HtmxDetails

from discovery.paths import realpath


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


class WorkspaceMissing(Exception):
    """The configured workspace is not a readable folder; a middleware renders the page."""


class BadQuery(ValueError):
    """A query parameter value outside what a view accepts; the message says what is."""


def workspace_root() -> Path:
    root = realpath(settings.TUNER_WORKSPACE)
    if not root.is_dir():
        raise WorkspaceMissing(str(settings.TUNER_WORKSPACE))
    try:
        next(iter(root.iterdir()), None)
    except OSError:
        raise WorkspaceMissing(str(settings.TUNER_WORKSPACE)) from None
    return root


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def json_response(data: Any, status: int = 200) -> HttpResponse:
    # orjson writes NaN and Infinity as null, which is what browsers can parse.
    body = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
    return HttpResponse(body, status=status, content_type="application/json")


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
