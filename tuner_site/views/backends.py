"""Inference servers: one panel each, refreshed over htmx, and the JSON twin."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from tuner_site import serializers
from tuner_site.workspace import backend_statuses

from .common import HtmxHttpRequest, json_response

FRAGMENTS = {"backends-panels", "backends-compact"}


@require_safe
def backend_list(request: HtmxHttpRequest) -> HttpResponse:
    template = "backends/list.html"
    # The overview's compact panel and this page's panels poll the same URL.
    if request.htmx and request.htmx.target in FRAGMENTS:
        template += f"#{request.htmx.target}"
    return render(request, template, {"statuses": backend_statuses()})


@require_safe
def api_backend_list(request: HttpRequest) -> HttpResponse:
    return json_response({"backends": [serializers.backend_json(s) for s in backend_statuses()]})
