"""Helpers every view shares: the typed request, JSON responses, error pages, and the checked
query parameters of tuner_site/params.py."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.middleware import HtmxDetails

from tuner_site.params import BadQuery, choice_param, int_param
from tuner_site.serializers import dumps

__all__ = [
    "BadQuery",
    "HtmxHttpRequest",
    "choice_param",
    "error_response",
    "int_param",
    "is_api",
    "json_response",
]


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith("/api/")


def json_response(data: object, status: int = 200) -> HttpResponse:
    return HttpResponse(dumps(data), status=status, content_type="application/json")


def error_response(request: HttpRequest, status: int, message: str) -> HttpResponse:
    if is_api(request):
        return json_response({"error": message}, status=status)
    return render(request, "error.html", {"status": status, "message": message}, status=status)
