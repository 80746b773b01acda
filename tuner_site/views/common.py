"""Helpers every view shares: the workspace, JSON responses, and error pages."""

from __future__ import annotations

import json
import math
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
    return HttpResponse(dumps(data), status=status, content_type="application/json")


def dumps(data: Any, indent: bool = False) -> bytes:
    """JSON for the API and the CLI: NaN and Infinity become null, as browsers need."""
    option = orjson.OPT_NON_STR_KEYS | (orjson.OPT_INDENT_2 if indent else 0)
    try:
        return orjson.dumps(data, option=option)
    except TypeError:
        # orjson stops at integers beyond 64 bits, which a workspace file can hold.
        return json.dumps(_json_safe(data), indent=2 if indent else None).encode()


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


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
