"""Server-rendered SVG line charts: the first paint, and the whole chart without JavaScript.

The SVG's viewBox is the plot area and stretches with its box (strokes keep their width), while
tick labels and axis titles are HTML, so they stay readable on a phone. Every drawing rule
lives here: the smoothing window (in steps, one per chart), which series are sparse (a marker
on each point), where a series has gaps (its line breaks), the colours. `Chart.config` hands
them to static/js/dashboard.js, which redraws the chart interactively from the JSON twins.
"""

from __future__ import annotations

import math
import sys
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import accumulate
from operator import itemgetter
from statistics import median
from typing import Any

from discovery.metrics import unit as metric_unit
from tuner_site.formatting import Column, column, tick

VIEW_W, VIEW_H = 1000, 300
# Told apart by hue and lightness alike; compare pages draw up to eight runs.
COLORS = (
    "#2563eb",
    "#d97706",
    "#059669",
    "#9333ea",
    "#dc2626",
    "#0891b2",
    "#65a30d",
    "#db2777",
)
SPARSE_POINTS = 30  # up to this many points, every point gets a marker
GAP_FACTOR = 5  # a step interval this many times the usual one breaks the line
MIN_SMOOTHED = 3  # points a window must hold on average for a smoothed line to say anything
MAX_POINTS = 1200  # about two per horizontal pixel of a wide plot
MARK_GAP = 7.0  # viewBox units (about 5 px on a wide plot): thousands of checkpoints, one band

Point = tuple[float, float]


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    raw: str  # SVG path data; "M" starts each stretch between gaps
    smooth: str  # the moving average's path, "" when this series is drawn raw only
    markers: str  # a dot per point (zero-length segments), "" unless sparse or isolated
    best: str  # a dot at the best checkpoint's value (comparisons), or ""
    points: int
    sparse: bool
    breaks: tuple[float, ...]  # steps that start a new stretch after a gap
    format: Column = Column()  # how its values read, as in the tables: the readout's too


@dataclass(frozen=True)
class Mark:
    x: float
    label: str
    best: bool


@dataclass(frozen=True)
class Tick:
    pos: float  # percent of the plot, from the left (x) or from the top (y)
    label: str


@dataclass(frozen=True)
class Rate:
    """A prompt set's pass rate at one evaluated checkpoint, on the right axis."""

    step: int
    passed: int
    total: int
    checkpoint: str
    x: float  # viewBox units
    y: float

    @property
    def label(self) -> str:
        return f"{self.passed}/{self.total}"


@dataclass(frozen=True)
class Rates:
    """One prompt set's pass rate by step: a point per evaluated checkpoint, on 0–100 %."""

    name: str
    color: str
    points: tuple[Rate, ...]
    # Dashed, through the first point at each step: a final model evaluated beside the
    # checkpoint of its step is a dot of its own there.
    path: str
    markers: str


@dataclass(frozen=True)
class Chart:
    title: str
    y_title: str
    series: tuple[Series, ...]
    marks: tuple[Mark, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    window: int  # steps in the centred moving average of the smoothed lines
    missing: tuple[str, ...] = ()  # names with nothing to draw, listed as such
    best_step: int | None = None
    checkpoint_steps: tuple[int, ...] = ()
    best_steps: tuple[tuple[str, int], ...] = ()  # per series, on comparisons
    x_title: str = "step"
    unit: str = ""  # the y-axis's, when every series has it: shares' ticks read 80%
    width: int = VIEW_W
    height: int = VIEW_H
    x_range: tuple[float, float] = (0.0, 1.0)  # the steps the plot spans
    # Pass rates by step on a second, right-hand axis (0–100 %), one line per prompt set.
    rates: tuple[Rates, ...] = ()
    rate_ticks: tuple[Tick, ...] = ()

    @property
    def smoothed(self) -> bool:
        return any(s.smooth for s in self.series)

    @property
    def any_markers(self) -> bool:
        return any(s.markers for s in self.series)

    def config(self, source: str) -> dict[str, Any]:
        """What the interactive chart needs besides the data at `source`."""
        return {
            "source": source,
            "title": self.title,
            "y_title": self.y_title,
            "x_title": self.x_title,
            "window": self.window,
            "unit": self.unit,
            "series": [
                {
                    "name": s.name,
                    "color": s.color,
                    "sparse": s.sparse,
                    "smooth": bool(s.smooth),
                    "breaks": list(s.breaks),
                    "format": s.format.spec,
                }
                for s in self.series
            ],
            "marks": list(self.checkpoint_steps),
            "best": self.best_step,
            "bests": dict(self.best_steps),
            # The right axis's lines, whole: a few points each, so no JSON twin to fetch.
            "rates": [
                {
                    "name": r.name,
                    "color": r.color,
                    "steps": [p.step for p in r.points],
                    "values": [p.passed / p.total for p in r.points],
                    "labels": [p.label for p in r.points],
                    "checkpoints": [p.checkpoint for p in r.points],
                }
                for r in self.rates
            ],
        }


def moving_average(steps: Sequence[float], values: Sequence[float], window: float) -> list[float]:
    """Each value averaged with its neighbours within `window` steps, centred on it.

    A trailing average lags a falling loss by half a window and shifts its shape. Near either
    end the window narrows on both sides, so it stays centred. Runs logged at different
    intervals are smoothed alike. static/js/dashboard.js does the same.
    """
    half = window / 2
    sums = [0.0, *accumulate(values)]
    out: list[float] = []
    if not steps:
        return out
    first, last = steps[0], steps[-1]
    # Called for every line of every chart on a run's page: the builtins' calls are spelt out.
    left, right, add = bisect_left, bisect_right, out.append
    for s in steps:
        h = s - first if s - first < half else half
        if last - s < h:
            h = last - s
        lo, hi = left(steps, s - h), right(steps, s + h)
        add((sums[hi] - sums[lo]) / (hi - lo))
    return out


def smoothing_steps(span: float) -> int:
    """The smoothing window for a chart spanning `span` steps: a 25th of it, rounded to 1, 2
    or 5 times a power of ten, so that every line on one chart is smoothed alike."""
    if span <= 0:
        return 1
    raw = span / 25
    mag = 10 ** math.floor(math.log10(raw))
    return max(1, int(next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw * 0.75)))


def gap_starts(steps: Sequence[float]) -> list[int]:
    """Indexes where a stretch starts after an interval far longer than the usual one."""
    if len(steps) < 3:
        return []
    gaps = [b - a for a, b in zip(steps, steps[1:], strict=False)]
    usual = median(gaps)
    return [i + 1 for i, g in enumerate(gaps) if usual > 0 and g > GAP_FACTOR * usual]


def thin(points: Sequence[Point], limit: int = MAX_POINTS) -> list[Point]:
    """At most `limit` points: each bucket keeps its lowest and highest, in step order.

    Spikes (a NaN-adjacent blow-up, a loss jump) stay visible, unlike with plain striding.
    """
    if len(points) <= limit:
        return list(points)
    buckets = limit // 2
    size = len(points) / buckets
    out: list[Point] = []
    value = itemgetter(1)
    for b in range(buckets):
        chunk = points[int(b * size) : int((b + 1) * size)]
        if not chunk:
            continue
        lo, hi = min(chunk, key=value), max(chunk, key=value)
        if lo == hi:
            out.append(lo)
        else:
            out.extend((lo, hi) if lo < hi else (hi, lo))
    return out


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round values between lo and hi, about `count` apart; any finite range, none overflows."""
    raw = hi / count - lo / count
    if not 0 < raw < math.inf:
        return [lo]
    mag = 10.0 ** math.floor(math.log10(raw))
    if mag == 0:  # a range among the smallest floats there are
        return [lo]
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    # Multiples of the step, not a running sum: no drift, and no tick past the range's end.
    first, last = math.ceil(lo / step), math.floor(hi / step)
    return [k * step for k in range(first, last + 1)] if last - first <= 4 * count else [lo]


def _unit(lo: float, hi: float) -> Callable[[float], float]:
    """Maps lo..hi onto 0..1, in halves when the span itself is beyond a float (-1e308..1e308)."""
    if math.isfinite(hi - lo):
        return lambda v: (v - lo) / (hi - lo)
    return lambda v: (v / 2 - lo / 2) / (hi / 2 - lo / 2)


def _y_range(ys: Sequence[float]) -> tuple[float, float]:
    """The y-axis: the values' range and 5% either side, within what a float holds."""
    lo, hi = min(ys), max(ys)
    if lo == hi:
        lo, hi = lo - max(1.0, abs(lo) * 1e-6), hi + max(1.0, abs(hi) * 1e-6)
    pad = hi * 0.05 - lo * 0.05
    return max(lo - pad, -sys.float_info.max), min(hi + pad, sys.float_info.max)


def _spaced(marks: list[Mark]) -> tuple[Mark, ...]:
    """Marks at least MARK_GAP apart, the best one always among them."""
    kept: list[Mark] = []
    for m in sorted(marks, key=lambda m: m.x):
        if kept and m.x - kept[-1].x < MARK_GAP:
            if m.best:
                kept[-1] = m
            continue
        kept.append(m)
    return tuple(kept)


def line_chart(
    title: str,
    steps: Sequence[int],
    columns: Mapping[str, Sequence[float | None]],
    checkpoint_steps: Sequence[int] = (),
    best_step: int | None = None,
    formats: Mapping[str, Column] | None = None,
) -> Chart | None:
    """A chart of the finite values of each column (named by its metric); None when nothing
    is plottable. `formats`: how a column's values read in the page's tables; by default,
    as a table of all its values would write them."""
    data = {name: list(zip(steps, values, strict=True)) for name, values in columns.items()}
    y_title = next(iter(columns)) if len(columns) == 1 else title
    units = {metric_unit(name) for name in columns}
    given = formats or {}
    # A column's format is decided from all its values: only for the lines given none.
    own = {n: column(v, metric_unit(n)) for n, v in columns.items() if n not in given}
    return points_chart(
        title,
        data,
        checkpoint_steps,
        best_step,
        y_title=y_title,
        formats=own | dict(given),
        unit=units.pop() if len(units) == 1 else "",
    )


def points_chart(
    title: str,
    points: Mapping[str, Sequence[tuple[float, float | None]]],
    checkpoint_steps: Sequence[int] = (),
    best_step: int | None = None,
    best_steps: Mapping[str, int | None] | None = None,
    y_title: str | None = None,
    formats: Mapping[str, Column] | None = None,
    unit: str = "",
) -> Chart | None:
    """One line per name, each with its own steps; None when nothing is plottable.

    Colours follow the names' order, whether or not a name has points to draw. One smoothing
    window, in steps, serves every line. `best_steps` marks each line's best checkpoint.
    `formats` says how each line's values read (as in the page's table; by default, as a table
    of that line's values in `unit` would write them); `unit` is the y-axis's.
    """
    colors = {name: COLORS[i % len(COLORS)] for i, name in enumerate(points)}
    data: dict[str, list[Point]] = {
        name: kept
        for name, pts in points.items()
        if (kept := sorted((s, v) for s, v in pts if v is not None and math.isfinite(v)))
    }
    if not data:
        return None
    xs = [s for pts in data.values() for s, _ in pts]
    x0, x1 = min(xs), max(max(xs), *(checkpoint_steps or [0]))
    y0, y1 = _y_range([v for pts in data.values() for _, v in pts])
    if x0 == x1:
        x0, x1 = x0 - 1, x1 + 1
    window = smoothing_steps(x1 - x0)
    x_unit, y_unit = _unit(x0, x1), _unit(y0, y1)

    def sx(x: float) -> float:
        return round(x_unit(x) * VIEW_W, 1)

    def sy(u: float) -> float:
        return round(VIEW_H - u * VIEW_H, 1)

    # Paths take values on the 0..1 scale, where no sum of values (a moving average) overflows.
    def path(pts: Sequence[Point], starts: set[float]) -> str:
        # sx and sy inlined: a run's page draws thousands of points a line.
        kept = thin(pts)
        moves = [
            f"L{round(x_unit(s) * VIEW_W, 1)},{round(VIEW_H - u * VIEW_H, 1)}" for s, u in kept
        ]
        for i, (s, _) in enumerate(kept):
            if i == 0 or s in starts:
                moves[i] = "M" + moves[i][1:]
            if not starts:
                break  # no gap: only the first point moves
        return "".join(moves)

    def dots(pts: Sequence[Point]) -> str:
        return "".join(f"M{sx(s)},{sy(u)}h0" for s, u in pts)

    series = []
    for name, values in data.items():
        pts = [(s, y_unit(v)) for s, v in values]
        steps = [s for s, _ in pts]
        starts = gap_starts(steps)
        breaks = tuple(steps[i] for i in starts)
        sparse = len(pts) <= SPARSE_POINTS
        smooth = ""
        if not sparse and (steps[-1] - steps[0]) / len(pts) * MIN_SMOOTHED <= window:
            avg = moving_average(steps, [v for _, v in pts], window)
            smooth = path(list(zip(steps, avg, strict=True)), set(breaks))
        bounds = [0, *starts, len(pts)]
        alone = [pts[a] for a, b in zip(bounds, bounds[1:], strict=False) if b - a == 1]
        best = _value_at((best_steps or {}).get(name), pts)
        series.append(
            Series(
                name=name,
                color=colors[name],
                raw=path(pts, set(breaks)),
                smooth=smooth,
                markers=dots(pts if sparse else alone),
                best=dots([best]) if best else "",
                points=len(pts),
                sparse=sparse,
                breaks=breaks,
                format=(formats or {}).get(name) or column([v for _, v in values], unit),
            )
        )
    marks = _spaced(
        [Mark(sx(s), f"checkpoint-{s}", s == best_step) for s in checkpoint_steps if x0 <= s <= x1]
    )
    pct_x, pct_y = 100 / VIEW_W, 100 / VIEW_H
    x_ticks = tuple(
        Tick(round(sx(t) * pct_x, 2), f"{t:g}") for t in _nice_ticks(x0, x1) if x0 <= t <= x1
    )
    y_ticks = tuple(
        Tick(round(sy(y_unit(t)) * pct_y, 2), tick(t, unit))
        for t in _nice_ticks(y0, y1)
        if y0 <= t <= y1
    )
    return Chart(
        title=title,
        y_title=y_title or title,
        series=tuple(series),
        marks=marks,
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        window=window if any(s.smooth for s in series) else 0,
        missing=tuple(name for name in points if name not in data),
        best_step=best_step,
        checkpoint_steps=tuple(checkpoint_steps),
        best_steps=tuple((n, s) for n, s in (best_steps or {}).items() if s is not None),
        unit=unit,
        x_range=(x0, x1),
    )


# The right axis spans a little beyond 0–100 %, so that a point at 0 % or 100 % is whole.
RATE_PAD = 0.05
RATE_TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)
# Apart from the left axis's first lines (loss, eval_loss, val_loss) and the best mark's green.
RATE_COLORS = ("#db2777", "#9333ea", "#0891b2", "#dc2626")


def with_pass_rates(
    chart: Chart, rates: Mapping[str, Sequence[tuple[int, int, int, str]]]
) -> Chart:
    """The chart with each prompt set's pass rate by step on a right-hand 0–100 % axis:
    `rates` maps a prompt set to its (step, passed, total, checkpoint) per evaluated
    checkpoint, a final model after the checkpoint of its step."""
    x0, x1 = chart.x_range
    x_unit = _unit(x0, x1)

    def sy(rate: float) -> float:
        return round(VIEW_H - (rate + RATE_PAD) / (1 + 2 * RATE_PAD) * VIEW_H, 1)

    drawn = []
    for i, (name, found) in enumerate(rates.items()):
        points = tuple(
            Rate(step, passed, total, name, round(x_unit(step) * VIEW_W, 1), sy(passed / total))
            for step, passed, total, name in sorted(found, key=lambda t: t[0])
            if total > 0 and x0 <= step <= x1
        )
        if not points:
            continue
        first = [p for j, p in enumerate(points) if j == 0 or p.step != points[j - 1].step]
        path = "".join(f"{'M' if j == 0 else 'L'}{p.x},{p.y}" for j, p in enumerate(first))
        markers = "".join(f"M{p.x},{p.y}h0" for p in points)
        color = RATE_COLORS[i % len(RATE_COLORS)]
        drawn.append(Rates(name, color, points, path, markers))
    ticks = tuple(Tick(round(sy(t) * 100 / VIEW_H, 2), f"{round(t * 100)}%") for t in RATE_TICKS)
    return replace(chart, rates=tuple(drawn), rate_ticks=ticks if drawn else ())


def _value_at(step: int | None, pts: Sequence[Point]) -> Point | None:
    """The point at `step`, else the nearest one logged before it (a checkpoint's metrics)."""
    if step is None:
        return None
    i = bisect_right([s for s, _ in pts], step)
    return pts[i - 1] if i else None
