"""Runs side by side: one metric's curves on one chart, and a row of figures per run."""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers

from discovery.config import Difference, config_of, differences
from discovery.metrics import COMPARE_DEFAULTS, canonical, is_bookkeeping, unit
from discovery.runs import Run, RunDetail, detail, get_run, list_runs, run_history
from tuner_site import links, serializers, workspace
from tuner_site.charts import COLORS, Chart, points_chart
from tuner_site.formatting import Column, column

from .common import BadQuery, HtmxHttpRequest, choice_param, json_response

MAX_RUNS = len(COLORS)
MAX_CANDIDATES = 200  # the newest runs offered by "Add a run"


@dataclass(frozen=True)
class Line:
    d: RunDetail
    color: str
    steps: tuple[int, ...]
    values: tuple[float, ...]
    without: str  # this comparison's URL without this run

    @property
    def last(self) -> float | None:
        return self.values[-1] if self.values else None

    @property
    def lowest(self) -> float | None:
        return min(self.values, default=None)

    @property
    def highest(self) -> float | None:
        return max(self.values, default=None)


@dataclass(frozen=True)
class RunComparison:
    metric: str | None
    metrics: list[str]
    lines: list[Line]
    chart: Chart | None
    candidates: list[Run]  # runs that can still be added, newest first
    source: str  # the JSON twin the interactive chart reads

    format: Column  # of the table's last, lowest and highest columns, and the chart's readout
    # The settings that differ between the runs, and how many are the same in all of them.
    config_diff: tuple[Difference, ...] = ()
    config_same: tuple[str, ...] = ()


def _selected(request: HttpRequest) -> list[RunDetail]:
    ids = list(dict.fromkeys(x for x in request.GET.getlist("run") if x))
    if len(ids) > MAX_RUNS:
        raise BadQuery(f"run can be given at most {MAX_RUNS} times, not {len(ids)}.")
    ws = workspace.current()
    found = []
    for run_id in ids:
        trainer, _, name = run_id.partition("/")
        run = get_run(ws, trainer, name)
        if run is None:
            raise BadQuery(
                f"run must name a run in this workspace as <trainer>/<run>, "
                f"such as rtx3090_sft/20251101_100000; {run_id!r} is not one."
            )
        found.append(detail(run))
    return found


def _default_metric(logged: list[set[str]]) -> str | None:
    """The first preferred metric every run logged, else any run logged, else the first."""
    every, some = set.intersection(*logged), set.union(*logged)
    for pool in (every, some):
        found = next((m for m in COMPARE_DEFAULTS if m in pool), None)
        if found:
            return found
    return min(some, default=None)


def _params(ids: list[str], metric: str | None) -> dict[str, links.Value]:
    """A comparison's canonical query: its runs, in order, and the metric while there are any."""
    return {"run": ids, "metric": metric if ids else None}


def _without(
    request: HttpRequest, run_id: str, ids: list[str], metric: str | None, logged: list[set[str]]
) -> str:
    """This comparison without one run; the metric stays while another run logged it."""
    rest = [(x, names) for x, names in zip(ids, logged, strict=True) if x != run_id]
    keep = metric if any(metric in names for _, names in rest) else None
    return links.here(request, _params([x for x, _ in rest], keep))


def _candidates(ids: list[str]) -> list[Run]:
    """Runs to offer under "Add a run": the newest ones, grouped by trainer."""
    if len(ids) >= MAX_RUNS:
        return []
    runs = list_runs(workspace.current())
    newest = [r for r in runs if r.id not in ids][:MAX_CANDIDATES]
    return sorted(newest, key=lambda r: r.trainer.id)  # stable: newest first within a trainer


def _comparison(request: HttpRequest, offer_more: bool) -> RunComparison:
    runs = _selected(request)
    series = [run_history(d.run) for d in runs]
    # One quantity under two names (`lr`, `learning_rate`) is one series here.
    names = [{canonical(m): m for m in s.metric_names()} for s in series]
    logged = [set(n) for n in names]
    metrics = sorted(set().union(*logged))
    # With no run chosen (the last one just removed) there is no metric to check it against.
    metric = (choice_param(request, "metric", metrics) if runs else None) or (
        _default_metric(logged) if logged else None
    )
    ids = [d.run.id for d in runs]
    lines = []
    for color, d, s, own in zip(COLORS, runs, series, names, strict=False):
        chosen = s.column(own[metric]) if metric in own else []
        kept = [(st, v) for st, v in zip(s.steps, chosen, strict=False) if math.isfinite(v)]
        steps, values = tuple(st for st, _ in kept), tuple(v for _, v in kept)
        without = _without(request, d.run.id, ids, metric, logged)
        lines.append(Line(d, color, steps, values, without))
    # One precision for every figure of the table, in the metric's unit; the readout's too.
    fmt = column((x for ln in lines for x in (ln.last, ln.lowest, ln.highest)), unit(metric or ""))
    chart = points_chart(
        metric or "",
        {ln.d.run.id: list(zip(ln.steps, ln.values, strict=True)) for ln in lines},
        best_steps={ln.d.run.id: ln.d.best.step if ln.d.best else None for ln in lines},
        y_title=metric,
        formats=dict.fromkeys((ln.d.run.id for ln in lines), fmt),
        unit=fmt.unit,
    )
    return RunComparison(
        metric,
        # Offered: what was logged, timing and bookkeeping aside unless asked for by URL.
        [m for m in metrics if not is_bookkeeping(m) or m == metric],
        lines,
        chart,
        _candidates(ids) if offer_more else [],
        links.page_url("tuner-api-compare", **_params(ids, metric)),
        fmt,
        *differences([config_of(d.run) for d in runs]),
    )


@require_safe
@vary_on_headers("HX-Request")  # else Back shows a cached fragment as the page
def compare(request: HtmxHttpRequest) -> HttpResponse:
    template = "compare.html"
    if request.htmx:
        template += "#compare-body"
    return render(request, template, {"cmp": _comparison(request, offer_more=True)})


@require_safe
def api_compare(request: HttpRequest) -> HttpResponse:
    cmp = _comparison(request, offer_more=False)
    return json_response(
        {
            "metric": cmp.metric,
            "metrics": cmp.metrics,
            # How the page writes these values: unit (discovery.metrics.unit) and decimals.
            "format": cmp.format.spec,
            "runs": [
                {
                    **serializers.run_summary_json(ln.d),
                    "steps": list(ln.steps),
                    "values": list(ln.values),
                }
                for ln in cmp.lines
            ],
            # Only the settings that differ, one value per run in the runs' order.
            "config_diff": [{"key": c.key, "values": list(c.values)} for c in cmp.config_diff],
            "config_same_count": len(cmp.config_same),
        }
    )
