"""Models: every model known anywhere (published from a run, served, evaluated), and one model's
whole chain from run to evaluation. The joining itself is discovery.lineage's."""

from __future__ import annotations

from django.core.paginator import Page
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from discovery.lineage import Lineage, Model
from discovery.paths import is_safe_name
from tuner_site import serializers, workspace
from tuner_site.paging import MODEL_ROWS_PER_PAGE, requested_page

from .common import json_response


def _get_or_404(lineage: Lineage, model: str) -> Model:
    found = lineage.get(model) if is_safe_name(model) else None
    if found is None:
        raise Http404(f"No model {model!r}: it is neither published, served nor evaluated here.")
    return found


def _page(request: HttpRequest, lineage: Lineage) -> Page[Model]:
    """The `?page=` of the model list, most recent first."""
    return requested_page(request, lineage.models, MODEL_ROWS_PER_PAGE)


@require_safe
def model_list(request: HttpRequest) -> HttpResponse:
    lineage = workspace.lineage()
    page = _page(request, lineage)
    context = {"lineage": lineage, "page": page, "models": page.object_list}
    return render(request, "models/list.html", context)


@require_safe
def api_model_list(request: HttpRequest) -> HttpResponse:
    lineage = workspace.lineage()
    page = _page(request, lineage)
    digests = lineage.catalog.digests
    return json_response(
        {
            "count": page.paginator.count,
            "page": page.number,
            "pages": page.paginator.num_pages,
            "models": [serializers.model_row_json(m, digests) for m in page.object_list],
            # What of the workspace's record of sweeps was skipped or unreadable.
            "notes": [n for n in (lineage.catalog.served_note,) if n],
        }
    )


@require_safe
def model_detail(request: HttpRequest, model: str) -> HttpResponse:
    lineage = workspace.lineage()
    m = _get_or_404(lineage, model)
    return render(request, "models/detail.html", {"m": m, "digests": lineage.catalog.digests})


@require_safe
def api_model_detail(request: HttpRequest, model: str) -> HttpResponse:
    lineage = workspace.lineage()
    m = _get_or_404(lineage, model)
    return json_response(serializers.model_detail_json(m, lineage.catalog.digests))
