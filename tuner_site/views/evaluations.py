"""Evaluation results: which model passed how much of which prompt set."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from discovery.evaluations import Evaluation, get_evaluation, list_evaluations
from discovery.prompt_sets import get_prompt_set
from tuner_site import serializers, workspace

from .common import choice_param, json_response


def _filtered(request: HttpRequest) -> list[Evaluation]:
    found = list_evaluations(workspace.current().root)
    model = choice_param(request, "model", sorted({e.model for e in found if e.model}))
    prompt_set = choice_param(
        request, "prompt_set", sorted({e.prompt_set for e in found if e.prompt_set})
    )
    return [
        e
        for e in found
        if (model is None or e.model == model)
        and (prompt_set is None or e.prompt_set == prompt_set)
    ]


def _get_or_404(name: str) -> Evaluation:
    found = get_evaluation(workspace.current().root, name)
    if found is None:
        raise Http404(f"No evaluation result {name!r} in Evaluator/results/.")
    return found


@require_safe
def evaluation_list(request: HttpRequest) -> HttpResponse:
    return render(request, "evaluations/list.html", {"evaluations": _filtered(request)})


@require_safe
def api_evaluation_list(request: HttpRequest) -> HttpResponse:
    return json_response(
        {"evaluations": [serializers.evaluation_json(e) for e in _filtered(request)]}
    )


@require_safe
def evaluation_detail(request: HttpRequest, name: str) -> HttpResponse:
    e = _get_or_404(name)
    has_set = (
        e.prompt_set is not None
        and get_prompt_set(workspace.current().root, e.prompt_set) is not None
    )
    cases = sorted(e.cases, key=lambda c: (c.passed, c.case_id))  # failures first
    return render(request, "evaluations/detail.html", {"e": e, "cases": cases, "has_set": has_set})


@require_safe
def api_evaluation_detail(request: HttpRequest, name: str) -> HttpResponse:
    return json_response(serializers.evaluation_json(_get_or_404(name), cases=True))
