"""The run list's configuration columns (`?col=lora.r`) and filters (`?where=lora.r>=32`).

Both need only each run's configuration (discovery.config), never its logs: a list sorted by a
configuration column stays a list in an order the walk knows, and reads only its page's logs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from django.http import HttpRequest
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from discovery.config import (
    MAIN_KEYS,
    Value,
    Where,
    WhereError,
    config_of,
    key_order,
    parse_where,
    sort_key,
)
from discovery.runs import Run
from tuner_site.formatting import setting, visible
from tuner_site.params import BadQuery

MAX_COLUMNS = 8


@dataclass(frozen=True)
class ConfigQuery:
    keys: list[str]  # the configuration columns, in the order asked
    where: list[Where]

    @property
    def params(self) -> dict[str, list[str]]:
        """What the page's shareable URL keeps of them."""
        return {"col": list(self.keys), "where": [w.text for w in self.where]}

    @property
    def sorts(self) -> tuple[str, ...]:
        return tuple(s for k in self.keys for s in (k, f"-{k}"))

    def matches(self, run: Run) -> bool:
        if not self.where:
            return True
        cfg = config_of(run)
        return all(w.test(cfg.get(w.key)) for w in self.where)


def workspace_keys(runs: Iterable[Run]) -> list[str]:
    """Every configuration key some run has, the vocabulary's first (most runs first after)."""
    counts: Counter[str] = Counter()
    for r in runs:
        counts.update(list(config_of(r).by_key))
    return sorted(counts, key=key_order)


def config_query(request: HttpRequest, runs: list[Run]) -> ConfigQuery:
    """`col` and `where` from the query; a key no run has, or a filter that does not parse, is
    a BadQuery that lists what would do."""
    keys = list(dict.fromkeys(k for k in request.GET.getlist("col") if k))
    raw = [w for w in request.GET.getlist("where") if w.strip()]
    if len(keys) > MAX_COLUMNS:
        raise BadQuery(f"col can be given at most {MAX_COLUMNS} times, not {len(keys)}.")
    try:
        where = [parse_where(w) for w in raw]
    except WhereError as exc:
        raise BadQuery(str(exc)) from None
    asked = keys + [w.key for w in where]
    if asked:
        # Most asks are the vocabulary's main keys: the whole workspace is read only otherwise.
        known = set(MAIN_KEYS) if set(asked) <= set(MAIN_KEYS) else set(workspace_keys(runs))
        for name, key in [("col", k) for k in keys] + [("where", w.key) for w in where]:
            if key not in known:
                accepted = ", ".join(workspace_keys(runs)) or "(no run has a configuration)"
                raise BadQuery(
                    f"{name} must name a configuration key of some run: {accepted}. Got {key!r}."
                )
    return ConfigQuery(keys, where)


def sort_runs(runs: list[Run], key: str, descending: bool) -> list[Run]:
    """Runs by one configuration value; runs without it last in either direction."""
    having = [(sort_key(config_of(r).get(key)), r) for r in runs]
    known = [x for x in having if x[0][0] < 2]
    unknown = [r for k, r in having if k[0] == 2]
    known.sort(key=lambda x: x[0], reverse=descending)
    return [r for _, r in known] + unknown


def cells(run: Run, keys: list[str], written: dict[tuple, str] | None = None) -> SafeString:
    """A run list row's configuration cells: each value as the page writes it, titled with
    the file it came from. Written here in one pass, not by a template loop (a page of rows
    has a hundred cells, and the loop took a tenth of the list's time); every value escaped.
    `written`: the cells of this page so far, most runs sharing their settings' values."""
    if not keys:
        return SafeString("")
    cfg = config_of(run)
    written = {} if written is None else written
    found = []
    for k in keys:
        s = cfg.by_key.get(k)
        # The type too: 1, 1.0 and True are equal keys that read differently.
        key = (k, s.source, type(s.value), s.value) if s else (k,)
        if key not in written:
            title = f' title="from {escape(visible(s.source))}"' if s else ""
            text = escape(setting(s.value, k)) if s else "—"
            written[key] = (
                f'<td class="num c-cfg"{title}><span class="card-label">{escape(visible(k))} '
                f"</span>{text}</td>"
            )
        found.append(written[key])
    return mark_safe("".join(found))  # noqa: S308  each value above is escaped


def values(run: Run, keys: list[str]) -> dict[str, Value | None]:
    """The JSON's `config`: each asked key's value, null where the run has none."""
    cfg = config_of(run)
    return {k: cfg.get(k) for k in keys}


def options(chosen: list[str]) -> list[tuple[str, bool]]:
    """The Columns menu: the vocabulary's main keys, then any other chosen by URL (offered
    without reading every run's configuration, on every page of the list)."""
    offered = list(MAIN_KEYS) + [k for k in chosen if k not in MAIN_KEYS]
    return [(k, k in chosen) for k in offered]
