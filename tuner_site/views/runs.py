"""Runs and checkpoints: pages, their htmx fragments, and their JSON twins."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.core.paginator import Page
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import push_url

from discovery.checkpoints import (
    Checkpoint,
    adapter_summary,
    disk_sizes,
    list_files,
    read_adapter_config,
)
from discovery.config import RUN_TYPE_SOURCE, config_of
from discovery.logs import History
from discovery.metrics import (
    CHART_GROUPS,
    column_order,
    is_bookkeeping,
    unit,
)
from discovery.mlx import npz_state
from discovery.paths import is_safe_name
from discovery.runs import STATUSES, Run, RunDetail, get_run, run_dir_problems, run_history
from discovery.values import finite
from tuner_site import links, serializers, workspace
from tuner_site.chart_cache import run_charts
from tuner_site.charts import Chart, line_chart, with_pass_rates
from tuner_site.checkpoint_columns import ALL_COLUMNS, checkpoint_columns
from tuner_site.config_columns import values
from tuner_site.eval_ranking import Evaluated, Ranked, ranked_detail
from tuner_site.formatting import Column, brief, column, pass_rate, with_unit
from tuner_site.links import Pair
from tuner_site.paging import CHECKPOINTS_PER_PAGE, requested_page
from tuner_site.run_listing import SORT_OPTIONS, read_the_rest, run_listing

from . import sweeps as sweep_views
from .common import HtmxHttpRequest, json_response


@require_safe
# Else Back shows a cached fragment as the page; a poll also answers without the pushed URL.
@vary_on_headers("HX-Request", "HX-Trigger")
def run_list(request: HtmxHttpRequest) -> HttpResponse:
    ws = workspace.current()
    listing = run_listing(request, ws, wait=False)
    template = "runs/list.html"
    if request.htmx:
        template += "#runs-table"
    # The table polls itself (indexing, running runs): a poll must not add a history entry.
    poll = bool(request.htmx) and request.htmx.trigger == "runs-table"
    context = {
        "listing": listing,
        "here_params": listing.here,
        "statuses": STATUSES,
        "sort_options": SORT_OPTIONS,
        "sort_oob": bool(request.htmx) and not poll,
        # TUNER_RUN_DIRS folders that give no run, each with why (discovery's sentence).
        "run_dir_notes": () if request.htmx else run_dir_problems(ws),
    }
    response = render(request, template, context)
    if request.htmx and not poll:
        # The canonical URL, without the form's empty fields, is the one worth sharing.
        push_url(response, links.here(request, listing.here))
    read_the_rest(listing)
    return response


@require_safe
def api_run_list(request: HttpRequest) -> HttpResponse:
    listing = run_listing(request, workspace.current())
    page = listing.page
    response = json_response(
        {
            "count": listing.count,
            "page": page.number,
            "pages": page.paginator.num_pages,
            "runs": [
                serializers.run_summary_json(d)
                | ({"config": values(d.run, listing.config.keys)} if listing.config.keys else {})
                for d in page.object_list
            ],
        }
    )
    read_the_rest(listing)
    return response


def _get_detail_or_404(request: HttpRequest, trainer: str, run: str) -> RunDetail:
    return _get_ranked_or_404(request, trainer, run).d


def _get_ranked_or_404(request: HttpRequest, trainer: str, run: str) -> Ranked:
    found = get_run(workspace.current(), trainer, run)
    if found is None:
        raise Http404(f"No run {trainer}/{run} in this workspace.")
    return ranked_detail(request, found)


def _last_values(d: RunDetail) -> list[tuple[str, str, int | None]]:
    """Where no checkpoint is left to show them: each metric's last logged value, with its step
    where that is older than the last one."""
    last = d.history.last_step
    point = d.history.at(last)
    shown = []
    for m in column_order(point.values):
        value, step = point.values[m], point.steps.get(m)
        write = _metric_format(d, m, d.history.column(m))
        shown.append((m, write(value), step if step != last else None))
    return shown


def _metric_format(d: RunDetail, name: str, logged: Sequence[float | None] = ()) -> Column:
    """How a metric's values read on the run page: as its checkpoint table column writes them,
    so a value reads the same in the table and in the chart's readout; from every `logged`
    value where no checkpoint has one."""
    at_checkpoints = [c.metrics.get(name) for c in d.checkpoints]
    has = any(finite(v) is not None for v in at_checkpoints)
    return column(at_checkpoints if has else logged, unit(name))


def _charts(d: RunDetail, history: History, evaluated: Evaluated) -> list[Chart]:
    """The run's curves; the loss chart (else the first) with the pass rates its checkpoints'
    sweeps found, by step, on a right-hand axis."""
    charts = run_charts(d, lambda: _metric_charts(d, history))
    rates: dict[str, list[tuple[int, int, int, str]]] = {}
    stepped = [(c.step, c.is_final, c.name) for c in d.checkpoints if c.step is not None]
    for step, _, name in sorted(stepped):
        for e in evaluated.get(name, ()):
            rates.setdefault(e["prompt_set"], []).append((step, e["passed"], e["total"], name))
    if charts and rates:
        i = next((i for i, c in enumerate(charts) if c.title == CHART_GROUPS[0][0]), 0)
        charts[i] = with_pass_rates(charts[i], dict(sorted(rates.items())))
    return charts


def _metric_charts(d: RunDetail, history: History) -> list[Chart]:
    best = d.best
    charts = []
    names = set(history.metric_names())
    groups = list(CHART_GROUPS)
    if d.ranking.rule == "requested" and not any(d.ranking.metric in g for _, g in groups):
        groups.append((d.ranking.metric, (d.ranking.metric,)))
    steps = history.steps
    marks = d.run.checkpoint_steps
    if best is not None and best.step is not None and best.step not in marks:
        marks = tuple(sorted((*marks, best.step)))  # MLX's best_checkpoint.npz has no number
    for title, group in groups:
        present = [n for n in group if n in names]
        if not present:
            continue
        columns = {n: history.column(n) for n in present}
        formats = {n: _metric_format(d, n, values) for n, values in columns.items()}
        chart = line_chart(title, steps, columns, marks, best.step if best else None, formats)
        if chart is not None:
            charts.append(chart)
    return charts


def _view_params(request: HttpRequest, col: list[str] | None, page: int) -> list[Pair]:
    """This run page's canonical query: its ranking, page and columns (`col`: None for the
    default, [] for key columns only)."""
    params: list[Pair] = [(name, request.GET.get(name)) for name in ("rank", "order")]
    if col is not None:
        params.append(("col", col or [""]))
    return [*params, ("page", page)]


def _checkpoint_page(request: HttpRequest, d: RunDetail) -> Page[int]:
    """This page of a run's checkpoints (their indexes), as the page and its JSON show them."""
    return requested_page(request, range(len(d.checkpoints)), CHECKPOINTS_PER_PAGE)


@require_safe
# Else Back shows a cached fragment as the page: the lineage panel (HX-Target) and the live
# part are fragments of it, and a change of ranking or columns (HX-Trigger) pushes its URL.
@vary_on_headers("HX-Request", "HX-Target", "HX-Trigger")
def run_detail(request: HtmxHttpRequest, trainer: str, run: str) -> HttpResponse:
    if request.htmx and request.htmx.target == "run-sweeps":
        return sweep_views.run_panel(request, trainer, run)  # polls while a sweep runs
    ranked = _get_ranked_or_404(request, trainer, run)
    d = ranked.d
    if request.htmx and request.htmx.target == "run-lineage":
        # The chain panel polls itself while GGUF files are being hashed.
        return render(request, "runs/_lineage.html", _lineage_context(d.run))
    sizes = disk_sizes(d.checkpoints, d.run.trainer.root)
    page = _checkpoint_page(request, d)
    cols = checkpoint_columns(request.GET.getlist("col"), d)
    # One precision per column, decided from every checkpoint's value, on every page alike.
    formats = {m: _metric_format(d, m) for m in cols.shown}
    score_format = column(d.ranking.scores, unit(d.ranking.metric))
    # One column per prompt set a sweep evaluated checkpoints of this run on.
    evaluated = ranked.evaluated
    eval_sets = sorted({e["prompt_set"] for found in evaluated.values() for e in found})
    # A checkpoint's page is ranked by the rule this page was: its best mark and score agree.
    ranked_by = links.query({"rank": request.GET.get("rank"), "order": request.GET.get("order")})

    def row(i: int) -> dict[str, Any]:
        c = d.checkpoints[i]
        by_set = {e["prompt_set"]: e for e in evaluated.get(c.name, [])}
        return {
            "checkpoint": c,
            "url": links.checkpoint_url(d.run, c.name) + ranked_by,
            "score": score_format(d.ranking.scores[i]),
            "best": c.name == d.ranking.best,
            "size": sizes[c.name],
            "cells": [(m, formats[m](c.metrics.get(m)), c.metric_steps.get(m)) for m in cols.shown],
            "evals": [_eval_cell(by_set.get(name)) for name in eval_sets],
        }

    # A long run's best and newest checkpoints stay in view on every page.
    newest = max(range(len(d.checkpoints)), key=lambda i: d.checkpoints[i].step or 0, default=None)
    best = next((i for i, c in enumerate(d.checkpoints) if c.name == d.ranking.best), None)
    pinned = {i: what for i, what in ((newest, "newest"), (best, "best")) if i not in page}
    here = _view_params(request, cols.col, page.number)
    context = {
        "d": d,
        "rows": [row(i) for i in page],
        "pinned": [row(i) | {"pinned": what} for i, what in pinned.items() if i is not None],
        "page": page,
        "size_on_disk": sum(sizes.values()),
        "cols": cols,
        "eval_sets": eval_sets,
        "table_columns": len(cols.shown) + 4 + len(eval_sets),
        "here": links.here(request, here),
        "here_params": here,
        "cols_urls": {
            "all": links.here(request, _view_params(request, [ALL_COLUMNS], page.number)),
            "key": links.here(request, _view_params(request, [], page.number)),
            "default": links.here(request, _view_params(request, None, page.number)),
        },
        "charts": _charts(d, run_history(d.run), evaluated),
        "last_values": [] if d.checkpoints else _last_values(d),
        "rankable": [m for m in d.history.metric_names() if not is_bookkeeping(m)],
        # The pass-rate rules (eval:<prompt set>, the default first) and the training one.
        "prompt_sets": ranked.prompt_sets,
        "training_rule": ranked.training_rule,
        "rank_value": request.GET.get("rank") or "",
        "config": config_of(d.run),
        "config_run_type": RUN_TYPE_SOURCE,
        **_lineage_context(d.run),
        **sweep_views.panel_context(request, trainer, run),
    }
    template = "runs/detail.html"
    if request.htmx:
        template += "#live"
    response = render(request, template, context)
    if request.htmx and request.htmx.trigger not in ("run-live", "run-sweeps-ended"):
        # A change of ranking or columns: the URL worth sharing, not the form's fields. The
        # live part's own refresh adds no history entry.
        push_url(response, links.here(request, here))
    return response


def _eval_cell(found: dict[str, Any] | None) -> dict[str, Any] | None:
    if found is None:
        return None
    text = pass_rate(found["passed"], found["total"], found["low"], found["high"])
    return found | {"text": text}


def _lineage_context(run: Run) -> dict[str, Any]:
    lineage = workspace.lineage()
    published = lineage.catalog.of_run(run)
    digests = lineage.catalog.digests
    models = lineage.for_run(run)
    return {
        "run": run,
        "published": published,
        "models": models,
        "digests": digests,
        # Until every GGUF file's sha256 is known the panel polls itself, unless the whole
        # page already does (a running run).
        "hashing": run.status != "running"
        and any(digests.get(g.path) is None for p in published for g in p.gguf if g.path),
        "evaluated": any(m.evaluations for m in models),
    }


@require_safe
def api_run_detail(request: HttpRequest, trainer: str, run: str) -> HttpResponse:
    ranked = _get_ranked_or_404(request, trainer, run)
    d = ranked.d
    page = _checkpoint_page(request, d)
    sizes = disk_sizes(d.checkpoints, d.run.trainer.root)
    return json_response(
        serializers.run_detail_json(
            d, sizes, workspace.lineage(), page, ranked.evaluated, ranked.prompt_sets
        )
    )


@require_safe
def api_run_lineage(request: HttpRequest, trainer: str, run: str) -> HttpResponse:
    found = get_run(workspace.current(), trainer, run)
    if found is None:
        raise Http404(f"No run {trainer}/{run} in this workspace.")
    return json_response(serializers.run_lineage_json(found, workspace.lineage()))


@require_safe
def api_run_metrics(request: HttpRequest, trainer: str, run: str) -> HttpResponse:
    # The curves need no ranking: each chart's redraw reads no sweep result.
    found = get_run(workspace.current(), trainer, run)
    if found is None:
        raise Http404(f"No run {trainer}/{run} in this workspace.")
    return json_response(serializers.history_json(run_history(found)))


def _get_checkpoint_or_404(
    request: HttpRequest, trainer: str, run: str, checkpoint: str
) -> tuple[Ranked, Checkpoint, int]:
    ranked = _get_ranked_or_404(request, trainer, run)
    if is_safe_name(checkpoint):
        for i, c in enumerate(ranked.d.checkpoints):
            if c.name == checkpoint:
                return ranked, c, i
    raise Http404(f"No checkpoint {checkpoint} in run {trainer}/{run}.")


def _saved_state(c: Checkpoint, root: Path) -> dict[str, Any] | None:
    """The trainer state an MLX checkpoint .npz holds beside its weights, if it can be read."""
    return npz_state(c.path, root) if c.kind == "file" and c.path.suffix == ".npz" else None


@require_safe
def checkpoint_detail(
    request: HttpRequest, trainer: str, run: str, checkpoint: str
) -> HttpResponse:
    ranked, c, i = _get_checkpoint_or_404(request, trainer, run, checkpoint)
    d = ranked.d
    root = d.run.trainer.root
    files = list_files(c.path, root, c.kind == "top")
    # The table's columns first, in its order; timing and bookkeeping after them.
    names = column_order(c.metrics) + sorted(m for m in c.metrics if is_bookkeeping(m))
    context = {
        "d": d,
        "c": c,
        "files": files,
        "total_size": sum(f.size for f in files),
        "adapter": adapter_summary(read_adapter_config(c.path, root)),
        "state": [(key, brief(value, key)) for key, value in (_saved_state(c, root) or {}).items()],
        "prev": d.checkpoints[i - 1] if i > 0 else None,
        "next": d.checkpoints[i + 1] if i + 1 < len(d.checkpoints) else None,
        "score": with_unit(d.ranking.scores[i], unit(d.ranking.metric)),
        # What sweeps measured of it: the run page's column for each prompt set, with its result.
        "evaluations": [_eval_cell(e) for e in ranked.evaluated.get(c.name, [])],
        "metrics": [
            (name, with_unit(c.metrics[name], unit(name)), c.metric_steps.get(name))
            for name in names
        ],
    }
    return render(request, "runs/checkpoint.html", context)


@require_safe
def api_checkpoint_detail(
    request: HttpRequest, trainer: str, run: str, checkpoint: str
) -> HttpResponse:
    ranked, c, _ = _get_checkpoint_or_404(request, trainer, run, checkpoint)
    d = ranked.d
    root = d.run.trainer.root
    files = list_files(c.path, root, c.kind == "top")
    adapter = read_adapter_config(c.path, root)
    evaluations = ranked.evaluated.get(c.name, [])
    return json_response(
        serializers.checkpoint_detail_json(d, c, files, adapter, _saved_state(c, root), evaluations)
    )
