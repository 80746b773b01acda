"""/explore/: every run a point, a configuration key against an outcome; and its JSON twin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.encoding import escape_uri_path
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import push_url

from discovery import explore as ex
from discovery.config import config_of
from discovery.runs import list_runs
from tuner_site import serializers, workspace
from tuner_site.indexing import index_in_background
from tuner_site.scatter import parallel, scatter

from .common import BadQuery, HtmxHttpRequest, choice_param, json_response
from .runs import _details

MAX_AXES = 6  # keys on the parallel axes, the outcome aside


@dataclass(frozen=True)
class Explore:
    available: ex.Available
    keys: list[str]
    outcome: ex.Outcome | None
    rule: ex.Rule | None
    color: str
    log_x: bool | None
    result: ex.Exploration | None
    params: list[tuple[str, str]]  # the canonical query: what a shared link keeps


def _keys(request: HttpRequest, available: dict[str, int]) -> list[str]:
    keys = list(dict.fromkeys(k for k in request.GET.getlist("x") if k))
    if len(keys) > MAX_AXES:
        raise BadQuery(f"x can be given at most {MAX_AXES} times, not {len(keys)}.")
    for k in keys:
        if k not in available:
            accepted = ", ".join(available) or "(no run has a configuration yet)"
            raise BadQuery(f"x must be a configuration key of some run: {accepted}. Got {k!r}.")
    return keys


def _outcome(request: HttpRequest, available: dict[str, int]) -> ex.Outcome | None:
    raw = request.GET.get("y") or ""
    at = choice_param(request, "at", ex.AT) or "best"
    if not raw:
        return None
    outcome = ex.parse_outcome(raw, at)
    if outcome is None or raw not in available:
        accepted = ", ".join(available)
        raise BadQuery(f"y must be one of: {accepted}. Got {raw!r}.")
    return outcome


def _rule(request: HttpRequest, avail: ex.Available) -> ex.Rule | None:
    by_metric = {r.metric: r for r, _ in avail.rules}
    name = choice_param(request, "rule", list(by_metric))
    if name is not None:
        return by_metric[name]
    return avail.rules[0][0] if avail.rules else None


def _exploration(request: HttpRequest) -> tuple[Explore, tuple]:
    runs = list_runs(workspace.current())
    details, unread = _details(runs, wait=False)
    configs = {r.id: config_of(r) for r in runs}
    want = request.GET.get("y", "")
    # Pass rates join runs to evaluations through the lineage: read only when asked for.
    needs_rates = want.startswith(ex.PASS_RATE) or not (request.GET.get("x") and want)
    rates = ex.pass_rates(workspace.lineage()) if needs_rates else {}
    avail = ex.available(details, configs, rates)
    keys = _keys(request, dict(avail.keys))
    outcome = _outcome(request, dict(avail.outcomes))
    rule = _rule(request, avail)
    color = choice_param(request, "color", ex.COLOR_BY) or "method"
    scale = choice_param(request, "xscale", ("log", "linear"))
    log_x = None if scale is None else scale == "log"
    result = None
    if keys and outcome is not None:
        if outcome.kind == ex.BEST_SCORE and rule is None:
            raise BadQuery("y=best_score needs a run with a score; none has one yet.")
        result = ex.explore(details, configs, keys, outcome, rule, rates)
    params = [("x", k) for k in keys]
    if outcome is not None:
        params.append(("y", outcome.spec))
        if outcome.kind == ex.BEST_SCORE and request.GET.get("rule") and rule:
            params.append(("rule", rule.metric))
        if outcome.kind == "metric" and outcome.at != "best":
            params.append(("at", outcome.at))
    if color != "method":
        params.append(("color", color))
    if scale:
        params.append(("xscale", scale))
    page = Explore(avail, keys, outcome, rule, color, log_x, result, params)
    return page, unread


def _url(request: HttpRequest, params: list[tuple[str, str]]) -> str:
    return escape_uri_path(request.path) + (f"?{urlencode(params)}" if params else "")


def _y_label(page: Explore) -> str:
    assert page.outcome is not None
    if page.outcome.kind == ex.BEST_SCORE and page.rule is not None:
        return f"best {page.rule.metric}"
    return page.outcome.label


@require_safe
@vary_on_headers("HX-Request")  # else Back shows a cached fragment as the page
def explore(request: HtmxHttpRequest) -> HttpResponse:
    page, unread = _exploration(request)
    context: dict[str, Any] = {"page": page}
    if page.result is not None and page.result.points:
        label = _y_label(page)
        context["y_label"] = label
        context["scatter"] = scatter(page.result, page.color, label, page.log_x)
        if len(page.keys) > 1:
            context["parallel"] = parallel(page.result, page.color, label)
    template = "explore.html"
    if request.htmx:
        template += "#explore-body"
    response = render(request, template, context)
    if request.htmx:
        push_url(response, _url(request, page.params))
    if unread:
        index_in_background(unread)
    return response


def _point_json(p: ex.Point, keys: list[str]) -> dict[str, Any]:
    return {
        "run": p.d.run.id,
        "url": serializers.run_url(p.d.run),
        "x": p.x,
        "y": p.y,
        "values": dict(zip(keys, p.values, strict=True)),
        "method": p.method,
        "base_model": p.base_model,
    }


def _missing_json(m: ex.Missing) -> dict[str, Any]:
    return {"run": m.d.run.id, "url": serializers.run_url(m.d.run), "why": m.why}


@require_safe
def api_explore(request: HttpRequest) -> HttpResponse:
    page, unread = _exploration(request)
    result = page.result
    if result is None:
        data: dict[str, Any] = {
            "runs": page.available.runs,
            "keys": [{"key": k, "runs": n} for k, n in page.available.keys],
            "outcomes": [{"outcome": o, "runs": n} for o, n in page.available.outcomes],
            "rules": [
                {"metric": r.metric, "order": r.order, "runs": n} for r, n in page.available.rules
            ],
        }
    else:
        data = {
            "x": page.keys[0],
            "y": result.outcome.spec,
            "keys": page.keys,
            "at": result.outcome.at if result.outcome.kind == "metric" else None,
            "rule": {"metric": result.rule.metric, "order": result.rule.order}
            if result.outcome.kind == ex.BEST_SCORE and result.rule
            else None,
            "color": page.color,
            "points": [_point_json(p, page.keys) for p in result.points],
            "missing": [_missing_json(m) for m in result.missing],
        }
    response = json_response(data)
    if unread:
        index_in_background(unread)
    return response
