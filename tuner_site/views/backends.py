"""Inference servers: one panel each, refreshed over htmx, and the JSON twin; each model says
which run it came from."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers

from discovery.backends import BackendStatus
from discovery.lineage import served_models
from tuner_site import serializers, workspace
from tuner_site.paging import MODELS_PER_PAGE, check_page, window
from tuner_site.serializers import ServedLinks
from tuner_site.workspace import backend_statuses

from .common import HtmxHttpRequest, int_param, json_response

FRAGMENTS = {"backends-panels", "backends-compact"}


@require_safe
@vary_on_headers("HX-Request", "HX-Target")  # else Back shows a cached fragment as the page
def backend_list(request: HtmxHttpRequest) -> HttpResponse:
    template = "backends/list.html"
    # The overview's compact panel and this page's panels poll the same URL.
    if request.htmx and request.htmx.target in FRAGMENTS:
        template += f"#{request.htmx.target}"
    statuses = backend_statuses()
    page = _models_page(request, statuses)
    context: dict[str, Any] = {
        "statuses": statuses,
        "models_page": page,
        "here_params": {"models_page": page},
        "per_page": MODELS_PER_PAGE,
    }
    if template != "backends/list.html#backends-compact":
        context["links"] = _links(statuses, page)
    return render(request, template, context)


def _models_page(request: HttpRequest, statuses: list[BackendStatus]) -> int:
    """`?models_page=`, one number for every server's list (and its last answer's): checked
    against the longest, as every list's page number is."""
    lists = [s.models for s in statuses] + [s.last_seen.models for s in statuses if s.last_seen]
    longest = max(map(len, lists), default=0)
    return check_page(int_param(request, "models_page", 1), longest, MODELS_PER_PAGE, "models_page")


def _links(statuses: list[BackendStatus], page: int) -> ServedLinks | None:
    """The models on this page of each server, linked to runs, by server and model name.
    Only the page's: a server can hold tens of thousands."""
    try:
        cat = workspace.catalog()
    except workspace.WorkspaceMissing:
        return None  # the servers are worth showing without a workspace to link them to
    links: ServedLinks = {}
    for s in served_models(statuses, cat, window(page, MODELS_PER_PAGE)):
        links.setdefault(s.backend.name, {})[s.name] = s
    return links


@require_safe
def api_backend_list(request: HttpRequest) -> HttpResponse:
    statuses = backend_statuses()
    page = _models_page(request, statuses)
    links = _links(statuses, page)
    return json_response({"backends": [serializers.backend_json(s, links, page) for s in statuses]})
