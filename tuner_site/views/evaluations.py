"""Evaluation results: which model passed how much of which prompt set, from which run."""

from __future__ import annotations

from dataclasses import dataclass

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import push_url

from discovery.evaluations import (
    MAX_COMPARED,
    Evaluation,
    EvaluationComparison,
    compare,
    get_evaluation,
    list_evaluations,
)
from discovery.lineage import Lineage
from discovery.prompt_sets import get_prompt_set
from discovery.runs import Run
from tuner_site import links, serializers, workspace

from .common import BadQuery, HtmxHttpRequest, choice_param, json_response


@dataclass(frozen=True)
class Listing:
    evaluations: list[Evaluation]  # the ones the filters let through
    total: int  # results in Evaluator/results/, filtered or not
    models: list[str]
    prompt_sets: list[str]
    params: dict[str, str]  # the filters in force
    lineage: Lineage
    run: Run | None


def _filtered(request: HttpRequest) -> Listing:
    found = list_evaluations(workspace.current().root)
    models = sorted({e.model for e in found if e.model})
    prompt_sets = sorted({e.prompt_set for e in found if e.prompt_set})
    model = choice_param(request, "model", models)
    prompt_set = choice_param(request, "prompt_set", prompt_sets)
    lineage = workspace.lineage()
    run_id = request.GET.get("run") or None
    run = next((r for r in lineage.catalog.runs if r.id == run_id), None)
    if run_id is not None and run is None:
        raise BadQuery(f"run must be <trainer>/<run> of a run in this workspace, not {run_id!r}.")
    of_run = lineage.runs_evaluated().get(run_id or "", set())
    kept = [
        e
        for e in found
        if (model is None or e.model == model)
        and (prompt_set is None or e.prompt_set == prompt_set)
        and (run_id is None or e.name in of_run)
    ]
    params = {k: v for k, v in (("model", model), ("prompt_set", prompt_set), ("run", run_id)) if v}
    return Listing(kept, len(found), models, prompt_sets, params, lineage, run)


def _get_or_404(name: str) -> Evaluation:
    found = get_evaluation(workspace.current().root, name)
    if found is None:
        raise Http404(f"No evaluation result {name!r} in Evaluator/results/.")
    return found


@require_safe
@vary_on_headers("HX-Request")  # else Back shows a cached fragment as the page
def evaluation_list(request: HtmxHttpRequest) -> HttpResponse:
    listing = _filtered(request)
    template = "evaluations/list.html"
    if request.htmx:
        template += "#evaluation-results"
    context = {
        "listing": listing,
        "evaluations": listing.evaluations,
        "linked": listing.lineage.evaluations(),
        "run": listing.run,
    }
    response = render(request, template, context)
    if request.htmx:
        # The form sends its empty fields too; the URL worth sharing has only the filters.
        push_url(response, links.here(request, listing.params))
    return response


@require_safe
def api_evaluation_list(request: HttpRequest) -> HttpResponse:
    listing = _filtered(request)
    return json_response(serializers.evaluation_list_json(listing.evaluations, listing.lineage))


@require_safe
def evaluation_detail(request: HttpRequest, name: str) -> HttpResponse:
    e = _get_or_404(name)
    has_set = (
        e.prompt_set is not None
        and get_prompt_set(workspace.current().root, e.prompt_set) is not None
    )
    cases = sorted(e.cases, key=lambda c: (c.passed, c.case_id))  # failures first
    lineage = workspace.lineage()
    found = lineage.of_evaluation(e.name)
    # The other results on this prompt set, newest first, to compare with in one click.
    others = [
        x
        for x in list_evaluations(workspace.current().root)
        if x.prompt_set == e.prompt_set and x.name != e.name and not x.error
    ]
    context = {
        "e": e,
        "cases": cases,
        "has_set": has_set,
        "model": found[0] if found else None,
        "evaluated": found[1] if found else None,
        "others": others,
    }
    return render(request, "evaluations/detail.html", context)


@require_safe
def api_evaluation_detail(request: HttpRequest, name: str) -> HttpResponse:
    e = _get_or_404(name)
    lineage = workspace.lineage()
    return json_response(
        serializers.evaluation_json(e, cases=True) | serializers.evaluation_link_json(lineage, name)
    )


def _comparison(request: HttpRequest) -> tuple[EvaluationComparison, list[Evaluation]]:
    names = list(dict.fromkeys(n for n in request.GET.getlist("e") if n))
    if len(names) > MAX_COMPARED:
        raise BadQuery(f"compare at most {MAX_COMPARED} results at once, not {len(names)}.")
    found = list_evaluations(workspace.current().root)
    by_name = {e.name: e for e in found}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise BadQuery(
            f"e must name results in Evaluator/results/ (without .json); unknown: {unknown[0]!r}."
        )
    chosen = [by_name[n] for n in names]
    return compare(chosen), [e for e in found if e.name not in names and not e.error]


@require_safe
def evaluation_compare(request: HttpRequest) -> HttpResponse:
    comparison, addable = _comparison(request)
    lineage = workspace.lineage()
    linked = [lineage.of_evaluation(e.name) for e in comparison.evaluations]
    context = {
        "c": comparison,
        "columns": list(zip(comparison.evaluations, linked, strict=True)),
        "addable": addable,
        "full": len(comparison.evaluations) >= MAX_COMPARED,
    }
    return render(request, "evaluations/compare.html", context)


@require_safe
def api_evaluation_compare(request: HttpRequest) -> HttpResponse:
    comparison, _ = _comparison(request)
    return json_response(serializers.evaluation_comparison_json(comparison, workspace.lineage()))
