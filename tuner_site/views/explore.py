"""/explore/: every run a point, a configuration key against an outcome; and its JSON twin."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import push_url

from discovery import explore as ex
from discovery.config import RunConfig, config_of
from discovery.runs import Run, list_runs, passing_detail, walk_only
from tuner_site import links, serializers, workspace
from tuner_site.indexing import index_in_background
from tuner_site.run_listing import each_detail
from tuner_site.scatter import drawn, lines_svg, missing_list, parallel

from .common import BadQuery, HtmxHttpRequest, choice_param, json_response

MAX_AXES = 6  # keys on the parallel axes, the outcome aside


@dataclass(frozen=True)
class Explore:
    available: ex.Available | None  # what the form offers (None for a JSON plot)
    keys: list[str]
    outcome: ex.Outcome | None
    rule: ex.Rule | None
    color: str
    log_x: bool | None
    result: ex.Exploration | None
    params: list[tuple[str, str]]  # the canonical query: what a shared link keeps


@dataclass(frozen=True)
class _Runs:
    """Every run of the workspace as the page reads it: details, configurations, scores."""

    runs: list[Run]
    facts: dict[str, ex.Facts]
    configs: dict[str, RunConfig]
    rates: dict[str, dict[str, float]]

    @functools.cached_property
    def available(self) -> ex.Available:
        return ex.available(self.runs, self.facts, self.configs, self.rates)


def _keys(request: HttpRequest, runs: _Runs) -> list[str]:
    keys = list(dict.fromkeys(k for k in request.GET.getlist("x") if k))
    if len(keys) > MAX_AXES:
        raise BadQuery(f"x can be given at most {MAX_AXES} times, not {len(keys)}.")
    known = ex.config_keys(runs.configs)
    for k in keys:
        if k not in known:
            accepted = ", ".join(k for k, _ in runs.available.keys)
            accepted = accepted or "(no run has a configuration yet)"
            raise BadQuery(f"x must be a configuration key of some run: {accepted}. Got {k!r}.")
    return keys


def _outcome(request: HttpRequest, runs: _Runs) -> ex.Outcome | None:
    raw = request.GET.get("y") or ""
    at = choice_param(request, "at", ex.AT) or "best"
    if not raw:
        return None
    outcome = ex.parse_outcome(raw, at)
    if outcome is None or not ex.has_outcome(runs.facts, runs.rates, outcome):
        accepted = ", ".join(o for o, _ in runs.available.outcomes)
        raise BadQuery(f"y must be one of: {accepted}. Got {raw!r}.")
    return outcome


def _rule(request: HttpRequest, runs: _Runs) -> ex.Rule | None:
    found = ex.rules(ex.own_scores(runs.facts))
    by_metric = {r.metric: r for r, _ in found}
    name = choice_param(request, "rule", list(by_metric))
    if name is not None:
        return by_metric[name]
    return found[0][0] if found else None


def _read(request: HttpRequest, form: bool) -> tuple[_Runs, tuple]:
    runs = list_runs(workspace.current())
    # Only runs whose facts are not kept are read, each detail decoded for this answer alone.
    need = [r for r in runs if not ex.knows(r)]
    learned, unread = each_detail(
        need, False, lambda r: ex.learn(passing_detail(r)), lambda r: ex.facts_of(walk_only(r))
    )
    want = request.GET.get("y", "")
    # Pass rates join runs to evaluations through the lineage: read when asked for, or offered.
    needs_rates = form or want.startswith(ex.PASS_RATE) or not (request.GET.get("x") and want)
    rates = ex.pass_rates(workspace.lineage()) if needs_rates else {}
    configs = {r.id: config_of(r) for r in runs}
    found = ex.facts(runs, dict(zip([r.id for r in need], learned, strict=True)))
    return _Runs(runs, found, configs, rates), unread


def _exploration(request: HttpRequest, form: bool) -> tuple[Explore, tuple]:
    runs, unread = _read(request, form)
    keys = _keys(request, runs)
    outcome = _outcome(request, runs)
    rule = _rule(request, runs)
    color = choice_param(request, "color", ex.COLOR_BY) or "method"
    scale = choice_param(request, "xscale", ("log", "linear"))
    log_x = None if scale is None else scale == "log"
    result = None
    if keys and outcome is not None:
        if outcome.kind == ex.BEST_SCORE and rule is None:
            raise BadQuery("y=best_score needs a run with a score; none has one yet.")
        result = ex.explore(runs.runs, runs.facts, runs.configs, keys, outcome, rule, runs.rates)
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
    available = runs.available if form or result is None else None
    page = Explore(available, keys, outcome, rule, color, log_x, result, params)
    return page, unread


def _y_label(page: Explore) -> str:
    assert page.outcome is not None
    if page.outcome.kind == ex.BEST_SCORE and page.rule is not None:
        return f"best {page.rule.metric}"
    return page.outcome.label


@require_safe
@vary_on_headers("HX-Request")  # else Back shows a cached fragment as the page
def explore(request: HtmxHttpRequest) -> HttpResponse:
    page, unread = _exploration(request, form=True)
    context: dict[str, Any] = {"page": page}
    if page.result is not None and page.result.points:
        label = _y_label(page)
        context["y_label"] = label
        plot, svg = drawn(page.result, page.color, label, page.log_x)
        context |= {"scatter": plot, "marks_svg": svg}
        if len(page.keys) > 1:
            across = parallel(page.result, page.color, label)
            context |= {"parallel": across, "lines_svg": lines_svg(across.lines)}
    if page.result is not None:
        context["missing_list"] = missing_list(page.result.missing)
    template = "explore.html"
    if request.htmx:
        template += "#explore-body"
    response = render(request, template, context)
    if request.htmx:
        push_url(response, links.here(request, page.params))
    if unread:
        index_in_background(unread)
    return response


def _point_json(p: ex.Point, keys: list[str]) -> dict[str, Any]:
    return {
        "run": p.run.id,
        "url": serializers.run_url(p.run),
        "x": p.x,
        "y": p.y,
        "values": dict(zip(keys, p.values, strict=True)),
        "method": p.method,
        "base_model": p.base_model,
    }


def _missing_json(m: ex.Missing) -> dict[str, Any]:
    return {"run": m.run.id, "url": serializers.run_url(m.run), "why": m.why}


@require_safe
def api_explore(request: HttpRequest) -> HttpResponse:
    page, unread = _exploration(request, form=False)
    result = page.result
    if result is None:
        assert page.available is not None
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
