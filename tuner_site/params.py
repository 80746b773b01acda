"""A request's query parameters, checked: a value a page does not accept is a 400 that says
which values it does (`BadQuery`, answered by tuner_site/middleware.py)."""

from __future__ import annotations

from django.http import HttpRequest


class BadQuery(ValueError):
    """A query parameter value outside what a view accepts; the message says what is."""


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
