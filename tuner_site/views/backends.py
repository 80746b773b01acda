"""Inference servers: one panel each, refreshed over htmx, and the JSON twin."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from discovery.models import BackendStatus, configured, statuses
from tuner_site import serializers

from .common import HtmxHttpRequest, json_response

FRAGMENTS = {"backends-panels", "backends-compact"}


def backend_statuses() -> list[BackendStatus]:
    backends = configured(
        settings.OLLAMA_HOST, settings.LMSTUDIO_HOST, settings.TUNER_OPENAI_BACKENDS
    )
    return statuses(backends, settings.TUNER_BACKEND_TIMEOUT, settings.TUNER_BACKEND_CACHE_SECONDS)


@require_GET
def backend_list(request: HtmxHttpRequest) -> HttpResponse:
    template = "backends/list.html"
    # The overview's compact panel and this page's panels poll the same URL.
    if request.htmx and request.htmx.target in FRAGMENTS:
        template += f"#{request.htmx.target}"
    return render(request, template, {"statuses": backend_statuses()})


@require_GET
def api_backend_list(request: HttpRequest) -> HttpResponse:
    return json_response({"backends": [serializers.backend_json(s) for s in backend_statuses()]})
