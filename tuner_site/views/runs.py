"""Runs and checkpoints: pages, their htmx fragments, and their JSON twins."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urlencode

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.encoding import escape_uri_path
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
from discovery.evaluations import list_evaluations
from discovery.logindex import indexer
from discovery.logs import History
from discovery.metrics import (
    CHART_GROUPS,
    column_order,
    default_columns,
    is_bookkeeping,
    key_columns,
    unit,
)
from discovery.mlx import npz_state
from discovery.paths import is_safe_name
from discovery.ranking import RankError, RankRequest
from discovery.runs import (
    STATUSES,
    Run,
    RunDetail,
    Workspace,
    detail,
    get_run,
    is_ready,
    list_runs,
    list_trainers,
    run_dir_problems,
    run_history,
    walk_only,
    was_read,
)
from discovery.values import finite
from tuner_site import serializers, workspace
from tuner_site.charts import Chart, line_chart
from tuner_site.formatting import Column, brief, column, with_unit
from tuner_site.indexing import index_in_background
from tuner_site.paging import CHECKPOINTS_PER_PAGE
from tuner_site.prompt_notes import listed

from .common import BadQuery, HtmxHttpRequest, choice_param, int_param, json_response

T = TypeVar("T")
SortKey = Callable[[RunDetail], Any]
# Orders the walk alone knows: a page sorted by one of these reads only its own runs' logs.
RUN_SORT_KEYS: dict[str, Callable[[Run], Any]] = {
    "trainer": lambda r: r.trainer.id,
    "type": lambda r: r.type,
    "run": lambda r: r.name,
    "status": lambda r: r.status,
    "started": lambda r: r.started_at,
}


def _of_run(key: Callable[[Run], Any]) -> SortKey:
    return lambda d: key(d.run)


SORT_KEYS: dict[str, SortKey] = {
    **{k: _of_run(f) for k, f in RUN_SORT_KEYS.items()},
    "base_model": lambda d: d.base_model,
    "checkpoints": lambda d: d.checkpoint_count,
    "last_step": lambda d: d.step,
    "best_score": lambda d: d.best_score,  # grouped by rule: see _by_score
}
SORTS = tuple(s for k in SORT_KEYS for s in (k, f"-{k}"))
# The sort menu (the only way to sort run cards on a phone): every sort, in words.
SORT_OPTIONS = (
    ("-started", "newest first"),
    ("started", "oldest first"),
    ("best_score", "score, best first in each rule"),
    ("-best_score", "score, worst first in each rule"),
    ("-last_step", "most steps"),
    ("last_step", "fewest steps"),
    ("-checkpoints", "most checkpoints"),
    ("checkpoints", "fewest checkpoints"),
    ("status", "status"),
    ("-status", "status, Z to A"),
    ("run", "run name"),
    ("-run", "run name, Z to A"),
    ("trainer", "trainer"),
    ("-trainer", "trainer, Z to A"),
    ("type", "type"),
    ("-type", "type, Z to A"),
    ("base_model", "base model"),
    ("-base_model", "base model, Z to A"),
)


@dataclass(frozen=True)
class RunListing:
    page: Page
    count: int
    params: dict[str, str]
    types: list[str]
    trainers: list[str]
    unread: tuple[Run, ...] = ()  # runs whose logs are still to be read, in the background
    total: int = 0
    checking: int = 0  # logs first answered from a few windows, being read in full
    sort: str = "-started"
    walk_order: bool = True  # in an order the walk knows: only this page's runs were needed

    @property
    def pending(self) -> int:
        return len(self.unread)

    @property
    def rows_pending(self) -> bool:
        """Whether a row on this page is shown from the walk alone."""
        return any(d.pending for d in self.page.object_list)

    @property
    def live(self) -> bool:
        """Whether a row on this page can still change: a run trains, or a check is running."""
        return self.checking > 0 or any(d.run.status == "running" for d in self.page.object_list)

    @property
    def rows(self) -> list[tuple[RunDetail, str | None]]:
        """The page's runs, each with the heading of the score group it opens, if any."""
        if self.sort.lstrip("-") != "best_score":
            return [(d, None) for d in self.page.object_list]
        rows, previous = [], None
        for d in self.page.object_list:
            group = _score_group(d)
            rows.append((d, _group_heading(group) if group != previous else None))
            previous = group
        return rows


def _score_group(d: RunDetail) -> tuple[str, str] | None:
    """What a run's score means: the metric it is and which way is better."""
    if d.best_score is None:
        return None
    return d.ranking.metric, d.ranking.order


def _group_heading(group: tuple[str, str] | None) -> str:
    if group is None:
        return "No score yet"
    metric, order = group
    return f"Score: {metric}, {'higher' if order == 'max' else 'lower'} is better"


def _by_score(details: list[RunDetail], worst_first: bool) -> list[RunDetail]:
    """Scores of different rules do not compare: runs grouped by rule, each group in its
    own direction (best first, or worst first), groups by name, runs without a score last."""
    groups: dict[tuple[str, str], list[RunDetail]] = {}
    unscored = []
    for d in details:
        group = _score_group(d)
        if group is None:
            unscored.append(d)
        else:
            groups.setdefault(group, []).append(d)
    ordered = []
    for (_, order), members in sorted(groups.items()):
        members.sort(key=lambda d: d.best_score or 0.0, reverse=(order == "max") != worst_first)
        ordered.extend(members)
    return ordered + unscored


def _sorted(details: list[RunDetail], sort: str) -> list[RunDetail]:
    if sort.lstrip("-") == "best_score":
        return _by_score(details, sort.startswith("-"))
    key = SORT_KEYS[sort.lstrip("-")]
    known = [d for d in details if key(d) is not None]
    unknown = [d for d in details if key(d) is None]
    known.sort(key=key, reverse=sort.startswith("-"))
    return known + unknown  # runs without a value stay last in either direction


def _details(runs: list[Run], wait: bool) -> tuple[list[RunDetail], tuple[Run, ...]]:
    """Every run's detail; unless `wait`, many unread runs are shown from the walk alone (and
    left to read in the background)."""
    unread = [r for r in runs if not is_ready(r)]
    if wait or len(unread) <= settings.TUNER_SYNC_INDEX_LIMIT:
        return [detail(r) for r in runs], ()
    pending = {r.id for r in unread}
    return [walk_only(r) if r.id in pending else detail(r) for r in runs], tuple(unread)


def _page_details(shown: list[Run], runs: list[Run]) -> tuple[list[RunDetail], tuple[Run, ...]]:
    """The shown runs' details, read now (kilobytes of each log on a first visit); every other
    unread run is left to read in the background, for sorts and searches that need them all."""
    details = [detail(r) for r in shown]
    on_page = {r.id for r in shown}
    # A training run read once is not unread again: its files change on every poll.
    return details, tuple(
        r
        for r in runs
        if r.id not in on_page and not is_ready(r) and not (r.status == "running" and was_read(r))
    )


def _read_the_rest(listing: RunListing) -> None:
    # Queued once the answer is rendered: the reader thread would compete with it for the GIL.
    if listing.unread:
        index_in_background(listing.unread)


def _page(paginator: Paginator[T], number: int) -> Page[T]:
    if number > max(paginator.num_pages, 1):
        raise BadQuery(f"page must be between 1 and {paginator.num_pages}, not {number}.")
    return paginator.page(number)


def _run_listing(request: HttpRequest, ws: Workspace, wait: bool = True) -> RunListing:
    every = list_runs(ws)
    # Types are per run: a folder of Hugging Face output folders can hold several methods.
    types = sorted({r.type for r in every})
    trainer_ids = sorted({t.id for t in list_trainers(ws)})
    trainer = choice_param(request, "trainer", trainer_ids)
    run_type = choice_param(request, "type", types)
    status = choice_param(request, "status", STATUSES)
    sort = choice_param(request, "sort", SORTS) or "-started"
    q = request.GET.get("q", "").strip()
    page_number = int_param(request, "page", 1)
    runs = [
        r
        for r in every
        if (status is None or r.status == status)
        and (trainer is None or r.trainer.id == trainer)
        and (run_type is None or r.type == run_type)
    ]
    walk_order = not q and sort.lstrip("-") in RUN_SORT_KEYS
    if not walk_order:
        details, unread = _details(runs, wait)
        if q:
            needle = q.lower()
            details = [
                d
                for d in details
                if needle in d.run.id.lower() or needle in (d.base_model or "").lower()
            ]
        page = _page(Paginator(_sorted(details, sort), settings.TUNER_RUNS_PER_PAGE), page_number)
    else:
        key = RUN_SORT_KEYS[sort.lstrip("-")]
        ordered = sorted(runs, key=key, reverse=sort.startswith("-"))
        shown = _page(Paginator(ordered, settings.TUNER_RUNS_PER_PAGE), page_number)
        page_details, unread = _page_details(list(shown.object_list), runs)
        # The page's details, counted and numbered as the runs they are of.
        page = Page(page_details, shown.number, cast("Paginator[RunDetail]", shown.paginator))
    filters = {"trainer": trainer, "type": run_type, "status": status, "q": q}
    params = {k: v for k, v in filters.items() if v}
    if sort != "-started":
        params["sort"] = sort
    return RunListing(
        page,
        page.paginator.count,
        params,
        types,
        trainer_ids,
        unread,
        len(runs),
        indexer.checking(),
        sort,
        walk_order,
    )


@require_safe
# Else Back shows a cached fragment as the page; a poll also answers without the pushed URL.
@vary_on_headers("HX-Request", "HX-Trigger")
def run_list(request: HtmxHttpRequest) -> HttpResponse:
    ws = workspace.current()
    listing = _run_listing(request, ws, wait=False)
    template = "runs/list.html"
    if request.htmx:
        template += "#runs-table"
    # The table polls itself (indexing, running runs): a poll must not add a history entry.
    poll = bool(request.htmx) and request.htmx.trigger == "runs-table"
    context = {
        "listing": listing,
        "statuses": STATUSES,
        "sort_options": SORT_OPTIONS,
        "sort_oob": bool(request.htmx) and not poll,
        # TUNER_RUN_DIRS folders that give no run, each with why (discovery's sentence).
        "run_dir_notes": () if request.htmx else run_dir_problems(ws),
    }
    response = render(request, template, context)
    if request.htmx and not poll:
        # The canonical URL, without the form's empty fields, is the one worth sharing.
        params = dict(listing.params)
        if listing.page.number > 1:
            params["page"] = str(listing.page.number)
        push_url(response, request.path + (f"?{urlencode(params)}" if params else ""))
    _read_the_rest(listing)
    return response


@require_safe
def api_run_list(request: HttpRequest) -> HttpResponse:
    listing = _run_listing(request, workspace.current())
    page = listing.page
    response = json_response(
        {
            "count": listing.count,
            "page": page.number,
            "pages": page.paginator.num_pages,
            "runs": [serializers.run_summary_json(d) for d in page.object_list],
        }
    )
    _read_the_rest(listing)
    return response


def _get_detail_or_404(request: HttpRequest, trainer: str, run: str) -> RunDetail:
    found = get_run(workspace.current(), trainer, run)
    if found is None:
        raise Http404(f"No run {trainer}/{run} in this workspace.")
    metric = request.GET.get("rank") or None
    order = choice_param(request, "order", ("min", "max"))
    if metric is None:
        if order is not None:
            raise BadQuery(
                "order applies with rank=<metric>; give both, e.g. ?rank=loss&order=min."
            )
        return detail(found)
    try:
        return detail(found, RankRequest(metric, order))
    except RankError as exc:
        raise BadQuery(str(exc)) from None


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


def _charts(d: RunDetail, history: History) -> list[Chart]:
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


def _metric_columns(d: RunDetail) -> list[str]:
    """Metrics logged at any checkpoint, the ones people read first in front."""
    seen: dict[str, None] = {}
    for c in d.checkpoints:
        seen.update(dict.fromkeys(c.metrics))
    return column_order(seen)


# `?col=all` shows every column; `?col=` alone, the key columns only.
ALL_COLUMNS = "all"


@dataclass(frozen=True)
class Columns:
    """The checkpoint table's metric columns: which it has, which it always shows, which it
    shows now, and what the URL says (`col`: None when it says nothing, the default)."""

    available: list[str]
    key: list[str]
    shown: list[str]
    col: list[str] | None

    @property
    def extra(self) -> list[str]:
        return [m for m in self.available if m not in self.key]

    @property
    def hidden(self) -> int:
        return len(self.available) - len(self.shown)

    @property
    def form_values(self) -> list[str]:
        """`col` values a form keeps these columns with: none for the default, one empty
        value for the key columns only."""
        return [] if self.col is None else self.col or [""]


def _columns(request: HttpRequest, d: RunDetail) -> Columns:
    available = _metric_columns(d)
    key = key_columns(available, d.ranking.inputs)
    raw = request.GET.getlist("col")
    if not raw:
        default = default_columns(d.run.type, available, d.ranking.inputs)
        extra = [m for m in available if m in default and m not in key]
        return Columns(available, key, key + extra, None)
    asked = [v for v in dict.fromkeys(raw) if v]
    unknown = [v for v in asked if v not in available and v != ALL_COLUMNS]
    if unknown:
        accepted = ", ".join(available) or "(none logged at a checkpoint yet)"
        raise BadQuery(
            f"col must be a metric column of this run: {accepted}, or {ALL_COLUMNS}. "
            f"Got {unknown[0]!r}."
        )
    if ALL_COLUMNS in asked:
        every = [m for m in available if m not in key]
        return Columns(available, key, key + every, [ALL_COLUMNS])
    picked = set(asked)
    extra = [m for m in available if m in picked and m not in key]
    return Columns(available, key, key + extra, extra)


def _view_url(request: HttpRequest, col: list[str] | None, page: int) -> str:
    """This run page's shareable URL: its ranking, page and columns (`col`: None for the
    default, [] for key columns only), without a form's empty fields."""
    params: list[tuple[str, str]] = []
    for name in ("rank", "order"):
        value = request.GET.get(name)
        if value:
            params.append((name, value))
    if page > 1:
        params.append(("page", str(page)))
    if col is not None:
        params += [("col", c) for c in col] or [("col", "")]
    return escape_uri_path(request.path) + (f"?{urlencode(params)}" if params else "")


def _checkpoint_page(request: HttpRequest, d: RunDetail) -> Page:
    """This page of a run's checkpoints (their indexes), as the page and its JSON show them."""
    paginator = Paginator(range(len(d.checkpoints)), CHECKPOINTS_PER_PAGE)
    number = int_param(request, "page", 1)
    if number > paginator.num_pages:
        raise BadQuery(f"page must be between 1 and {paginator.num_pages}, not {number}.")
    return paginator.page(number)


@require_safe
# Else Back shows a cached fragment as the page: the lineage panel (HX-Target) and the live
# part are fragments of it, and a change of ranking or columns (HX-Trigger) pushes its URL.
@vary_on_headers("HX-Request", "HX-Target", "HX-Trigger")
def run_detail(request: HtmxHttpRequest, trainer: str, run: str) -> HttpResponse:
    d = _get_detail_or_404(request, trainer, run)
    if request.htmx and request.htmx.target == "run-lineage":
        # The chain panel polls itself while GGUF files are being hashed.
        return render(request, "runs/_lineage.html", _lineage_context(d.run))
    sizes = disk_sizes(d.checkpoints, d.run.trainer.root)
    page = _checkpoint_page(request, d)
    cols = _columns(request, d)
    # One precision per column, decided from every checkpoint's value, on every page alike.
    formats = {m: _metric_format(d, m) for m in cols.shown}
    score_format = column(d.ranking.scores, unit(d.ranking.metric))

    def row(i: int) -> dict[str, Any]:
        c = d.checkpoints[i]
        return {
            "checkpoint": c,
            "score": score_format(d.ranking.scores[i]),
            "best": c.name == d.ranking.best,
            "size": sizes[c.name],
            "cells": [(m, formats[m](c.metrics.get(m)), c.metric_steps.get(m)) for m in cols.shown],
        }

    # A long run's best and newest checkpoints stay in view on every page.
    newest = max(range(len(d.checkpoints)), key=lambda i: d.checkpoints[i].step or 0, default=None)
    best = next((i for i, c in enumerate(d.checkpoints) if c.name == d.ranking.best), None)
    pinned = {i: what for i, what in ((newest, "newest"), (best, "best")) if i not in page}
    here = _view_url(request, cols.col, page.number)
    context = {
        "d": d,
        "rows": [row(i) for i in page],
        "pinned": [row(i) | {"pinned": what} for i, what in pinned.items() if i is not None],
        "page": page,
        "size_on_disk": sum(sizes.values()),
        "cols": cols,
        "here": here,
        "cols_urls": {
            "all": _view_url(request, [ALL_COLUMNS], page.number),
            "key": _view_url(request, [], page.number),
            "default": _view_url(request, None, page.number),
        },
        "charts": _charts(d, run_history(d.run)),
        "last_values": [] if d.checkpoints else _last_values(d),
        "rankable": [m for m in d.history.metric_names() if not is_bookkeeping(m)],
        "config": config_of(d.run),
        "config_run_type": RUN_TYPE_SOURCE,
        **_lineage_context(d.run),
    }
    template = "runs/detail.html"
    if request.htmx:
        template += "#live"
    response = render(request, template, context)
    if request.htmx and request.htmx.trigger != "run-live":
        # A change of ranking or columns: the URL worth sharing, not the form's fields. The
        # live part's own refresh adds no history entry.
        push_url(response, here)
    return response


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
    d = _get_detail_or_404(request, trainer, run)
    page = _checkpoint_page(request, d)
    sizes = disk_sizes(d.checkpoints, d.run.trainer.root)
    return json_response(serializers.run_detail_json(d, sizes, workspace.lineage(), page.number))


@require_safe
def api_run_lineage(request: HttpRequest, trainer: str, run: str) -> HttpResponse:
    found = get_run(workspace.current(), trainer, run)
    if found is None:
        raise Http404(f"No run {trainer}/{run} in this workspace.")
    return json_response(serializers.run_lineage_json(found, workspace.lineage()))


@require_safe
def api_run_metrics(request: HttpRequest, trainer: str, run: str) -> HttpResponse:
    d = _get_detail_or_404(request, trainer, run)
    return json_response(serializers.history_json(run_history(d.run)))


def _get_checkpoint_or_404(
    request: HttpRequest, trainer: str, run: str, checkpoint: str
) -> tuple[RunDetail, Checkpoint, int]:
    d = _get_detail_or_404(request, trainer, run)
    if is_safe_name(checkpoint):
        for i, c in enumerate(d.checkpoints):
            if c.name == checkpoint:
                return d, c, i
    raise Http404(f"No checkpoint {checkpoint} in run {trainer}/{run}.")


def _saved_state(c: Checkpoint, root: Path) -> dict[str, Any] | None:
    """The trainer state an MLX checkpoint .npz holds beside its weights, if it can be read."""
    return npz_state(c.path, root) if c.kind == "file" and c.path.suffix == ".npz" else None


@require_safe
def checkpoint_detail(
    request: HttpRequest, trainer: str, run: str, checkpoint: str
) -> HttpResponse:
    d, c, i = _get_checkpoint_or_404(request, trainer, run, checkpoint)
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
    d, c, _ = _get_checkpoint_or_404(request, trainer, run, checkpoint)
    root = d.run.trainer.root
    files = list_files(c.path, root, c.kind == "top")
    adapter = read_adapter_config(c.path, root)
    return json_response(
        serializers.checkpoint_detail_json(d, c, files, adapter, _saved_state(c, root))
    )


def _overview(ws: Workspace, runs_only: bool) -> dict[str, Any]:
    runs = list_runs(ws)
    # One walk and one detail per run, so a run that just finished leaves "Training now"
    # and shows as completed in its trainer's card in the same answer.
    newest: dict[str, list[RunDetail]] = {}
    counts: Counter[str] = Counter(r.trainer.id for r in runs)
    running = []
    for r in runs:
        group = newest.setdefault(r.trainer.id, [])
        if r.status == "running" or len(group) < 5:
            d = detail(r)
            if r.status == "running":
                running.append(d)
            if len(group) < 5:
                group.append(d)
    context: dict[str, Any] = {
        "running": running,
        # (trainer, its newest runs, how many it has): a card says when it shows fewer.
        "newest": [(t, details, counts[t]) for t, details in sorted(newest.items())],
        "run_count": len(runs),
    }
    if runs_only:
        return context
    return context | {
        "statuses": workspace.backend_statuses(),
        "prompt_sets": listed(ws.root),
        "evaluations": [e for e in list_evaluations(ws.root) if not e.error][:5],
    }


@require_safe
@vary_on_headers("HX-Request", "HX-Target")  # the runs part is a fragment of its own
def overview(request: HtmxHttpRequest) -> HttpResponse:
    # The runs part polls this page; it alone is rendered, without probing any backend.
    if request.htmx and request.htmx.target == "overview-runs":
        return render(request, "overview.html#overview-runs", _overview(workspace.current(), True))
    return render(request, "overview.html", _overview(workspace.current(), False))


@require_safe
def api_overview(request: HttpRequest) -> HttpResponse:
    return json_response(serializers.overview_json(_overview(workspace.current(), False)))
