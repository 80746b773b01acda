"""Inference servers: one panel each, refreshed over htmx, and the JSON twin; each model says
which run it came from."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers

from discovery.backends import BackendStatus
from discovery.lineage import Lineage, Served
from tuner_site import serializers, workspace
from tuner_site.paging import MODELS_PER_PAGE
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
    page = int_param(request, "models_page", 1)
    statuses = backend_statuses()
    context: dict[str, Any] = {
        "statuses": statuses,
        "models_page": page,
        "per_page": MODELS_PER_PAGE,
    }
    if template != "backends/list.html#backends-compact":
        context["links"] = _links(_lineage(statuses))
    return render(request, template, context)


def _lineage(statuses: list[BackendStatus]) -> Lineage | None:
    try:
        return workspace.lineage(statuses)
    except workspace.WorkspaceMissing:
        return None  # the servers are worth showing without a workspace to link them to


def _links(lineage: Lineage | None) -> dict[str, dict[str, tuple[Served, str | None]]]:
    """Each served model with the id of its /models/ page, by backend name and model name."""
    links: dict[str, dict[str, tuple[Served, str | None]]] = {}
    if lineage is None:
        return links
    for s in lineage.served:
        model = lineage.model_of(s)
        links.setdefault(s.backend.name, {})[s.name] = (s, model.id if model else None)
    return links


@require_safe
def api_backend_list(request: HttpRequest) -> HttpResponse:
    page = int_param(request, "models_page", 1)
    statuses = backend_statuses()
    lineage = _lineage(statuses)
    return json_response(
        {"backends": [serializers.backend_json(s, lineage, page) for s in statuses]}
    )
