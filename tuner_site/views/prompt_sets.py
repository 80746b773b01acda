"""Prompt sets: the list, one set's cases filtered by tag, and their JSON twins."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers

from discovery.evaluations import list_evaluations
from discovery.prompt_sets import get_prompt_set
from tuner_site import serializers, workspace
from tuner_site.paging import CASES_PER_PAGE, requested_page
from tuner_site.prompt_notes import Listed, describe, listed, notes

from .common import BadQuery, HtmxHttpRequest, json_response


def _get_set_or_404(name: str) -> Listed:
    found = get_prompt_set(workspace.current().root, name)
    if found is None:
        raise Http404(f"No prompt set {name!r} in Evaluator/prompts/.")
    return describe(found, notes().get(name))


def _tag(request: HttpRequest, item: Listed) -> str | None:
    tag = request.GET.get("tag") or None
    known = {t for c in item.prompt_set.cases or () for t in c.tags}
    if tag is not None and tag not in known:
        raise BadQuery(f"tag must be one this set uses: {', '.join(sorted(known)) or 'none'}.")
    return tag


@require_safe
def prompt_set_list(request: HttpRequest) -> HttpResponse:
    return render(
        request, "prompt_sets/list.html", {"prompt_sets": listed(workspace.current().root)}
    )


@require_safe
def api_prompt_set_list(request: HttpRequest) -> HttpResponse:
    items = listed(workspace.current().root)
    return json_response({"prompt_sets": [serializers.prompt_set_json(x) for x in items]})


@require_safe
@vary_on_headers("HX-Request")  # else Back shows a cached fragment as the page
def prompt_set_detail(request: HtmxHttpRequest, name: str) -> HttpResponse:
    item = _get_set_or_404(name)
    tag = _tag(request, item)
    cases = [c for c in item.prompt_set.cases or () if tag is None or tag in c.tags]
    page = requested_page(request, cases, CASES_PER_PAGE)
    context = {
        "item": item,
        "tag": tag,
        "page": page,
        "here_params": {"tag": tag, "page": page.number},
        "tags": item.prompt_set.top_tags(50),
        "evaluations": [
            e
            for e in list_evaluations(workspace.current().root)
            if e.prompt_set == item.prompt_set.name
        ],
    }
    template = "prompt_sets/detail.html"
    if request.htmx:
        template += "#cases"
    return render(request, template, context)


@require_safe
def api_prompt_set_detail(request: HttpRequest, name: str) -> HttpResponse:
    item = _get_set_or_404(name)
    tag = _tag(request, item)
    cases = [c for c in item.prompt_set.cases or () if tag is None or tag in c.tags]
    return json_response(
        {**serializers.prompt_set_json(item), "cases": [serializers.case_json(c) for c in cases]}
    )
