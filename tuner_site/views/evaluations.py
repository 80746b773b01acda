"""Evaluation results: which model passed how much of which prompt set."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django_htmx.http import push_url

from discovery.evaluations import Evaluation, get_evaluation, list_evaluations
from discovery.prompt_sets import get_prompt_set
from tuner_site import serializers, workspace

from .common import HtmxHttpRequest, choice_param, json_response


@dataclass(frozen=True)
class EvaluationListing:
    evaluations: list[Evaluation]  # the ones the filters let through
    total: int  # results in Evaluator/results/, filtered or not
    models: list[str]
    prompt_sets: list[str]
    params: dict[str, str]  # the filters in force


def _filtered(request: HttpRequest) -> EvaluationListing:
    found = list_evaluations(workspace.current().root)
    models = sorted({e.model for e in found if e.model})
    prompt_sets = sorted({e.prompt_set for e in found if e.prompt_set})
    model = choice_param(request, "model", models)
    prompt_set = choice_param(request, "prompt_set", prompt_sets)
    kept = [
        e
        for e in found
        if (model is None or e.model == model)
        and (prompt_set is None or e.prompt_set == prompt_set)
    ]
    params = {k: v for k, v in (("model", model), ("prompt_set", prompt_set)) if v}
    return EvaluationListing(kept, len(found), models, prompt_sets, params)


def _get_or_404(name: str) -> Evaluation:
    found = get_evaluation(workspace.current().root, name)
    if found is None:
        raise Http404(f"No evaluation result {name!r} in Evaluator/results/.")
    return found


@require_GET
def evaluation_list(request: HtmxHttpRequest) -> HttpResponse:
    listing = _filtered(request)
    template = "evaluations/list.html"
    if request.htmx:
        template += "#evaluation-results"
    response = render(request, template, {"listing": listing, "evaluations": listing.evaluations})
    if request.htmx:
        # The form sends its empty fields too; the URL worth sharing has only the filters.
        query = urlencode(listing.params)
        push_url(response, request.path + (f"?{query}" if query else ""))
    return response


@require_GET
def api_evaluation_list(request: HttpRequest) -> HttpResponse:
    listing = _filtered(request)
    return json_response(
        {"evaluations": [serializers.evaluation_json(e) for e in listing.evaluations]}
    )


@require_GET
def evaluation_detail(request: HttpRequest, name: str) -> HttpResponse:
    e = _get_or_404(name)
    has_set = (
        e.prompt_set is not None
        and get_prompt_set(workspace.current().root, e.prompt_set) is not None
    )
    cases = sorted(e.cases, key=lambda c: (c.passed, c.case_id))  # failures first
    return render(request, "evaluations/detail.html", {"e": e, "cases": cases, "has_set": has_set})


@require_GET
def api_evaluation_detail(request: HttpRequest, name: str) -> HttpResponse:
    return json_response(serializers.evaluation_json(_get_or_404(name), cases=True))
