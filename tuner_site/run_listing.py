"""The run list's read policy, for every page that lists runs: the filters and sorts it takes,
which runs' logs a page reads before it answers, and which it leaves to the background.

A page in an order the walk knows (newest first, by name, …) reads only its own rows' logs; a
sort or search by what only logs tell reads every run, up to `TUNER_SYNC_INDEX_LIMIT` unread
ones, and shows the rest from the walk while they are read in the background.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.http import HttpRequest
from django.utils.safestring import SafeString

from discovery.logindex import indexer
from discovery.runs import (
    STATUSES,
    Run,
    RunDetail,
    Workspace,
    detail,
    list_runs,
    list_trainers,
    unready,
    walk_only,
    was_read,
)
from tuner_site.config_columns import ConfigQuery, cells, config_query, options, sort_runs
from tuner_site.formatting import score_formats
from tuner_site.indexing import index_in_background
from tuner_site.paging import page_of
from tuner_site.params import choice_param, int_param

SortKey = Callable[[RunDetail], Any]
DEFAULT_SORT = "-started"
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
    "best_score": lambda d: d.best_score,  # grouped by rule: see by_score
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


T = TypeVar("T")


@dataclass(frozen=True)
class RunListing:
    page: Page
    count: int
    # The filters and sort in force, as the canonical URL gives them (`col`, `where`: lists).
    params: dict[str, str | list[str]]
    types: list[str]
    trainers: list[str]
    unread: tuple[Run, ...] = ()  # runs whose logs are still to be read, in the background
    total: int = 0
    checking: int = 0  # logs first answered from a few windows, being read in full
    sort: str = DEFAULT_SORT
    walk_order: bool = True  # in an order the walk knows: only this page's runs were needed
    config: ConfigQuery = ConfigQuery([], [])  # configuration columns and setting filters

    @property
    def columns(self) -> list[tuple[str, bool]]:
        """The Columns menu's settings, each with whether it is shown."""
        return options(self.config.keys)

    @property
    def table_rows(
        self,
    ) -> list[tuple[RunDetail, str | None, str, SafeString]]:
        """`rows`, each with its score as the page's score column writes it and its
        configuration columns' cells."""
        formats = score_formats(self.page.object_list)
        written: dict[tuple, str] = {}  # the page's setting cells so far
        return [
            (
                d,
                group,
                formats[d.ranking.group](d.best_score),
                cells(d.run, self.config.keys, written),
            )
            for d, group in self.rows
        ]

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
    def here(self) -> dict[str, str | list[str]]:
        """This page's canonical query: the filters, the sort, and the page after the first."""
        number = self.page.number
        return self.params | ({"page": str(number)} if number > 1 else {})

    @property
    def rows(self) -> list[tuple[RunDetail, str | None]]:
        """The page's runs, each with the heading of the score group it opens, if any."""
        if self.sort.lstrip("-") != "best_score":
            return [(d, None) for d in self.page.object_list]
        rows, previous = [], None
        for d in self.page.object_list:
            group = score_group(d)
            rows.append((d, group_heading(group) if group != previous else None))
            previous = group
        return rows


def score_group(d: RunDetail) -> tuple[str, str] | None:
    """The scores a run's best score compares with (its ranking's group); None without one."""
    return None if d.best_score is None else d.ranking.group


def group_heading(group: tuple[str, str] | None) -> str:
    if group is None:
        return "No score yet"
    metric, order = group
    return f"Score: {metric}, {'higher' if order == 'max' else 'lower'} is better"


def by_score(details: list[RunDetail], worst_first: bool) -> list[RunDetail]:
    """Scores of different rules do not compare: runs grouped by rule, each group in its
    own direction (best first, or worst first), groups by name, runs without a score last."""
    groups: dict[tuple[str, str], list[RunDetail]] = {}
    unscored = []
    for d in details:
        group = score_group(d)
        if group is None:
            unscored.append(d)
        else:
            groups.setdefault(group, []).append(d)
    ordered = []
    for (_, order), members in sorted(groups.items()):
        members.sort(key=lambda d: d.best_score or 0.0, reverse=(order == "max") != worst_first)
        ordered.extend(members)
    return ordered + unscored


def sort_details(details: list[RunDetail], sort: str) -> list[RunDetail]:
    if sort.lstrip("-") == "best_score":
        return by_score(details, sort.startswith("-"))
    key = SORT_KEYS[sort.lstrip("-")]
    known = [d for d in details if key(d) is not None]
    unknown = [d for d in details if key(d) is None]
    known.sort(key=key, reverse=sort.startswith("-"))
    return known + unknown  # runs without a value stay last in either direction


def every_detail(runs: list[Run], wait: bool) -> tuple[list[RunDetail], tuple[Run, ...]]:
    """Every run's detail; unless `wait`, many unread runs are shown from the walk alone (and
    left to read in the background)."""
    return each_detail(runs, wait, detail, walk_only)


def each_detail(
    runs: list[Run], wait: bool, read: Callable[[Run], T], from_walk: Callable[[Run], T]
) -> tuple[list[T], tuple[Run, ...]]:
    """`read` of every run, as `every_detail` decides: unless `wait`, many unread runs get
    `from_walk` instead (and are left to read in the background)."""
    unread = unready(runs)
    if wait or len(unread) <= settings.TUNER_SYNC_INDEX_LIMIT:
        return [read(r) for r in runs], ()
    pending = {r.id for r in unread}
    return [from_walk(r) if r.id in pending else read(r) for r in runs], tuple(unread)


def page_details(shown: list[Run], runs: list[Run]) -> tuple[list[RunDetail], tuple[Run, ...]]:
    """The shown runs' details, read now (kilobytes of each log on a first visit); every other
    unread run is left to read in the background, for sorts and searches that need them all."""
    details = [detail(r) for r in shown]
    on_page = {r.id for r in shown}
    # A training run read once is not unread again: its files change on every poll.
    return details, tuple(
        r
        for r in unready(runs)
        if r.id not in on_page and not (r.status == "running" and was_read(r))
    )


def read_the_rest(listing: RunListing) -> None:
    """Hand the runs a page did not read to the background reader. Call it once the answer is
    rendered: the reader thread would compete with it for the GIL."""
    if listing.unread:
        index_in_background(listing.unread)


def run_listing(request: HttpRequest, ws: Workspace, wait: bool = True) -> RunListing:
    """The page of runs the query asks for (`trainer`, `type`, `status`, `q`, `sort`, `page`).
    `wait`: read every log a sort or search needs before answering (the JSON does)."""
    every = list_runs(ws)
    # Types are per run: a folder of Hugging Face output folders can hold several methods.
    types = sorted({r.type for r in every})
    trainer_ids = sorted({t.id for t in list_trainers(ws)})
    trainer = choice_param(request, "trainer", trainer_ids)
    run_type = choice_param(request, "type", types)
    status = choice_param(request, "status", STATUSES)
    config = config_query(request, every)
    sort = choice_param(request, "sort", SORTS + config.sorts) or DEFAULT_SORT
    by_config = sort.lstrip("-") in config.keys
    q = request.GET.get("q", "").strip()
    page_number = int_param(request, "page", 1)
    per_page = settings.TUNER_RUNS_PER_PAGE
    filtered = status or trainer or run_type or config.where
    runs = (
        [
            r
            for r in every
            if (status is None or r.status == status)
            and (trainer is None or r.trainer.id == trainer)
            and (run_type is None or r.type == run_type)
            and config.matches(r)
        ]
        if filtered
        else every
    )
    # A configuration column is read from small files, not logs: an order the walk knows.
    walk_order = not q and (by_config or sort.lstrip("-") in RUN_SORT_KEYS)
    if not walk_order:
        details, unread = every_detail(runs, wait)
        if q:
            needle = q.lower()
            details = [
                d
                for d in details
                if needle in d.run.id.lower() or needle in (d.base_model or "").lower()
            ]
        if by_config:
            order = sort_runs([d.run for d in details], sort.lstrip("-"), sort.startswith("-"))
            position = {r.id: i for i, r in enumerate(order)}
            details.sort(key=lambda d: position[d.run.id])
        else:
            details = sort_details(details, sort)
        page = page_of(details, page_number, per_page)
    else:
        if by_config:
            ordered = sort_runs(runs, sort.lstrip("-"), sort.startswith("-"))
        elif sort == DEFAULT_SORT:
            ordered = runs  # the walk's own order, newest first
        else:
            key = RUN_SORT_KEYS[sort.lstrip("-")]
            ordered = sorted(runs, key=key, reverse=sort.startswith("-"))
        shown = page_of(ordered, page_number, per_page)
        found, unread = page_details(list(shown.object_list), runs)
        # The page's details, counted and numbered as the runs they are of.
        page = Page(found, shown.number, cast("Paginator[RunDetail]", shown.paginator))
    filters = {"trainer": trainer, "type": run_type, "status": status, "q": q}
    params: dict[str, str | list[str]] = {k: v for k, v in filters.items() if v}
    if sort != DEFAULT_SORT:
        params["sort"] = sort
    params |= {k: v for k, v in config.params.items() if v}
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
        config,
    )
