"""A run's curves, drawn once per change of its files rather than on every request.

Drawing a chart of 2,000 logged points a line (smoothing, thinning, writing the SVG path) is
most of a run page's time, and a finished run's curves change only with its files: its
signature (discovery.runs.Run.signature) names every log and checkpoint they come from. What
else decides them is in the key too: the ranking rule (a requested metric gets a chart of its
own) and the best checkpoint's step, which a sweep's results can move without a file changing.
A training run's signature changes on every poll, so its charts are drawn each time, as before.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from discovery import caches
from discovery.runs import RunDetail
from tuner_site.charts import Chart

KEPT = 16  # runs; a chart's paths are about 30 KB, and people look at a few runs at a time

_drawn: OrderedDict[Hashable, tuple[Chart, ...]] = OrderedDict()
_lock = threading.Lock()


def run_charts(d: RunDetail, draw: Callable[[], list[Chart]]) -> list[Chart]:
    """`draw()`, or what it gave for this run when nothing that decides it has changed."""
    if not d.run.signature:
        return draw()
    best = d.best.step if d.best is not None else None
    key = (d.run.id, d.run.signature, d.ranking.rule, d.ranking.metric, d.ranking.order, best)
    with _lock:
        hit = _drawn.get(key)
        if hit is not None:
            _drawn.move_to_end(key)
            return list(hit)
    charts = draw()
    with _lock:
        _drawn[key] = tuple(charts)
        while len(_drawn) > KEPT:
            _drawn.popitem(last=False)
    return charts


def clear() -> None:
    with _lock:
        _drawn.clear()


caches.register(__name__, clear, "_drawn")
