"""One builder for a page's canonical, shareable URL: its path (from its URL name) and the query
that says what it shows, without a form's empty fields or the first page's number.

Views push these URLs (`push_url`), the JSON gives them, and templates build links with the
`{% page_url %}` and `{% query %}` tags, which call these functions.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import quote, urlencode

from django.http import HttpRequest
from django.urls import get_script_prefix, reverse
from django.utils.encoding import escape_uri_path
from django.utils.http import RFC3986_SUBDELIMS

from discovery import caches
from discovery.lineage import Model, Served
from discovery.runs import Run

Value = str | int | Sequence[str] | None
Pair = tuple[str, Value]
Params = Mapping[str, Value] | Iterable[Pair]


def query(params: Params) -> str:
    """`?a=1&b=2` in the order given, or '' when nothing is left. A value that is None or ''
    says nothing (a form's empty field) and page 1 is the default; a list repeats its key
    (`run=a&run=b`) and keeps an empty value, which then says something (`col=`: no extras)."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items() if isinstance(params, Mapping) else params:
        if value is None or value == "" or (key.endswith("page") and str(value) == "1"):
            continue
        if isinstance(value, str | int):
            pairs.append((key, str(value)))
        else:
            pairs += [(key, v) for v in value]
    return f"?{urlencode(pairs)}" if pairs else ""


def page_url(name: str, *args: object, **params: Value) -> str:
    """The page a URL name and its arguments give, with this query."""
    return reverse(name, args=args) + query(params)


def here(request: HttpRequest, params: Params) -> str:
    """The request's own page with this query: the URL to push after an htmx swap."""
    return escape_uri_path(request.path) + query(params)


def changed(current: Params, **changes: Value) -> str:
    """This page's query (`current`: its canonical parameters, one entry a name) with some
    changed (None or '' removes one), as a relative link; any change but the page's own goes
    back to page 1."""
    params = dict(current.items() if isinstance(current, Mapping) else current)
    params.update(changes)
    if "page" not in changes:
        params.pop("page", None)
    return query(params) or "?"


def run_url(run: Run) -> str:
    return _run_url(get_script_prefix(), run.trainer.id, run.name)


# A name no run, trainer or checkpoint can have (discovery lists no name with a NUL): a
# trainer's URL is reversed once with it in the run's place, and each run's name quoted into it.
_HOLE = "\x00"
_QUOTED_HOLE = quote(_HOLE)
# What reverse() leaves unquoted in a path (django.urls.resolvers), "/" aside: no name has one.
_SAFE = RFC3986_SUBDELIMS + "~:@"


@functools.lru_cache(maxsize=16384)
def _run_url(prefix: str, trainer: str, name: str) -> str:
    # reverse() costs 30 µs; /explore/ links every run of a large workspace on each answer, the
    # run list each row, and a command's JSON every run once.
    return _fill(_run_pattern(prefix, trainer), name)


@functools.lru_cache(maxsize=1024)
def _run_pattern(prefix: str, trainer: str) -> tuple[str, str]:
    return _split(reverse("tuner-run-detail", args=[trainer, _HOLE]))


def _split(url: str) -> tuple[str, str]:
    before, _, after = url.rpartition(_QUOTED_HOLE)
    return before, after


def _fill(pattern: tuple[str, str], name: str) -> str:
    """The URL reverse() gives with `name` in the pattern's hole: quoted as it quotes it."""
    return pattern[0] + quote(name, safe=_SAFE) + pattern[1]


caches.register(__name__, _run_url.cache_clear, "_run_url")
caches.register(__name__, _run_pattern.cache_clear, "_run_pattern")


def checkpoint_url(run: Run, name: str) -> str:
    return _checkpoint_url(get_script_prefix(), run.trainer.id, run.name, name)


@functools.lru_cache(maxsize=16384)
def _checkpoint_url(prefix: str, trainer: str, run: str, name: str) -> str:
    # As _run_url: the run list links each row's best checkpoint on every answer.
    return _fill(_checkpoint_pattern(prefix, trainer, name), run)


@functools.lru_cache(maxsize=1024)
def _checkpoint_pattern(prefix: str, trainer: str, checkpoint: str) -> tuple[str, str]:
    # The run is the hole: a workspace has few checkpoint names (checkpoint-N, final_model).
    return _split(reverse("tuner-checkpoint-detail", args=[trainer, _HOLE, checkpoint]))


caches.register(__name__, _checkpoint_pattern.cache_clear, "_checkpoint_pattern")
caches.register(__name__, _checkpoint_url.cache_clear, "_checkpoint_url")


def model_url(m: Model | Served) -> str:
    """A model's page; a served model's is that of the model row it joins."""
    return reverse("tuner-model-detail", args=[m.id if isinstance(m, Model) else m.model_id])
