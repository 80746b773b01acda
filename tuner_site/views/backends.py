"""Inference servers: one panel each, refreshed over htmx, and the JSON twin."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from tuner_site import serializers
from tuner_site.paging import MODELS_PER_PAGE
from tuner_site.workspace import backend_statuses

from .common import HtmxHttpRequest, int_param, json_response

FRAGMENTS = {"backends-panels", "backends-compact"}


@require_safe
def backend_list(request: HtmxHttpRequest) -> HttpResponse:
    template = "backends/list.html"
    # The overview's compact panel and this page's panels poll the same URL.
    if request.htmx and request.htmx.target in FRAGMENTS:
        template += f"#{request.htmx.target}"
    page = int_param(request, "models_page", 1)
    context = {"statuses": backend_statuses(), "models_page": page, "per_page": MODELS_PER_PAGE}
    return render(request, template, context)


@require_safe
def api_backend_list(request: HttpRequest) -> HttpResponse:
    page = int_param(request, "models_page", 1)
    return json_response(
        {"backends": [serializers.backend_json(s, page) for s in backend_statuses()]}
    )
