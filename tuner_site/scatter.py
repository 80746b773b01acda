"""Server-drawn SVG for /explore/: runs as points (a key against an outcome) and as lines
across parallel axes (several keys and the outcome).

The SVG's viewBox (0..1000 both ways) stretches with its box; points are zero-length round
strokes that keep their size (`vector-effect`), and tick labels are HTML placed by percentage,
so the plot stays readable on a phone. static/js/explore.js adds the hover readout.
"""

from __future__ import annotations

import math
import threading
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from django.urls import get_script_prefix
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from discovery import caches
from discovery.config import Value
from discovery.explore import Exploration, Missing, Point, numeric, wants_log
from tuner_site.charts import COLORS
from tuner_site.formatting import metric, setting, visible
from tuner_site.serializers import run_url

SIZE = 1000.0
OTHER = "#8a8f98"  # a colour beyond the palette: "other"
TICKS = 5


@dataclass(frozen=True)
class Axis:
    """How one key's values (or the outcome's) map onto 0..1, and its labelled ticks."""

    key: str
    kind: str  # "linear", "log" or "category"
    low: float = 0.0
    high: float = 1.0
    categories: tuple[str, ...] = ()

    def place(self, value: Value) -> float:
        if self.kind == "category":
            i = self.categories.index(setting(value, self.key))
            return (i + 0.5) / len(self.categories)
        v = float(value)  # type: ignore[arg-type]
        lo, hi = self.low, self.high
        if self.kind == "log":
            v, lo, hi = math.log10(v), math.log10(lo), math.log10(hi)
        if hi == lo:
            return 0.5
        return 0.04 + 0.92 * (v - lo) / (hi - lo)

    @property
    def ticks(self) -> list[tuple[float, str]]:
        if self.kind == "category":
            return [(self.place(c), c) for c in self.categories]
        if self.low == self.high:
            return [(0.5, _label(self.key, self.low))]
        if self.kind == "log":
            first, last = math.floor(math.log10(self.low)), math.ceil(math.log10(self.high))
            values = [10.0**e for e in range(first, last + 1)]
            values = [v for v in values if self.low <= v <= self.high] or [self.low, self.high]
        else:
            values = _nice(self.low, self.high)
        return [(self.place(v), _label(self.key, v)) for v in values]

    @property
    def ends(self) -> list[tuple[float, str]]:
        """A parallel axis's labels: its lowest and highest value, or its categories."""
        if self.kind == "category":
            ticks = self.ticks
            return ticks if len(ticks) <= 6 else [ticks[0], ticks[-1]]
        if self.low == self.high:
            return [(0.5, _label(self.key, self.low))]
        return [(self.place(v), _label(self.key, v)) for v in (self.low, self.high)]


def _nice(low: float, high: float) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 times a power of ten) inside low..high."""
    raw = (high - low) / (TICKS - 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step)
    return [i * step for i in range(first, math.floor(high / step) + 1)] or [low, high]


def _label(key: str, value: float) -> str:
    if key == "learning_rate":
        return setting(value, key)
    return metric(round(value, 10))


def axis(key: str, values: Sequence[Value], log: bool | None = None) -> Axis:
    if values and numeric(values):
        numbers = [float(v) for v in values]  # type: ignore[arg-type]
        finite = [v for v in numbers if math.isfinite(v)] or [0.0]
        use_log = wants_log(key, values) if log is None else log and min(finite) > 0
        return Axis(key, "log" if use_log else "linear", min(finite), max(finite))
    labels = sorted({setting(v, key) for v in values})
    return Axis(key, "category", categories=tuple(labels))


@dataclass(frozen=True)
class Mark:
    point: Point
    x: float  # viewBox units
    y: float
    color: str
    label: str  # what the readout says
    href: str  # the run's page


@dataclass(frozen=True)
class Legend:
    name: str
    color: str
    count: int


def palette(points: Sequence[Point], color_by: str) -> tuple[dict[str, str], list[Legend]]:
    """A colour per method (or base model), the most common first; the rest grey."""
    counts = Counter(_group(p, color_by) for p in points)
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    colors = {name: COLORS[i] if i < len(COLORS) else OTHER for i, (name, _) in enumerate(ordered)}
    return colors, [Legend(name, colors[name], n) for name, n in ordered]


def _group(p: Point, color_by: str) -> str:
    return (p.method if color_by == "method" else p.base_model) or "unknown"


def _jitter(run_id: str) -> float:
    """A small, stable sideways offset, so runs with one category value do not hide each other."""
    return (zlib.crc32(run_id.encode()) % 1000 / 1000 - 0.5) * 0.5


@dataclass(frozen=True)
class Scatter:
    x: Axis
    y: Axis
    marks: list[Mark]
    legend: list[Legend]

    @property
    def grid(self) -> list[float]:
        """The y ticks' lines, in viewBox units."""
        return [(1 - pos) * SIZE for pos, _ in self.y.ticks]


def scatter(ex: Exploration, color_by: str, y_label: str, log_x: bool | None) -> Scatter:
    xs = axis(ex.keys[0], [p.x for p in ex.points], log_x)
    ys = axis("outcome", [p.y for p in ex.points], False)
    colors, legend = palette(ex.points, color_by)
    marks = []
    for p in ex.points:
        fx = xs.place(p.x)
        if xs.kind == "category":
            fx += _jitter(p.run.id) / len(xs.categories)
        label = f"{p.run.id} · {ex.keys[0]} {setting(p.x, ex.keys[0])} · {y_label} {metric(p.y)}"
        y = (1 - ys.place(p.y)) * SIZE
        marks.append(Mark(p, fx * SIZE, y, colors[_group(p, color_by)], label, run_url(p.run)))
    return Scatter(xs, ys, marks, legend)


def drawn(ex: Exploration, color_by: str, y_label: str, log_x: bool | None) -> tuple:
    """The scatter and its points' SVG; the last drawing is reused while the same answer is
    drawn the same way (a warm /explore/ with nothing changed reuses its answer)."""
    key = (get_script_prefix(), color_by, y_label, log_x)
    with _lock:
        hit = _last_drawn.get("last")
    if hit is not None and hit[0] is ex and hit[1] == key:
        return hit[2]
    plot = scatter(ex, color_by, y_label, log_x)
    found = (plot, marks_svg(plot.marks))
    with _lock:
        _last_drawn["last"] = (ex, key, found)
    return found


# "last" → (the Exploration drawn, how, (its Scatter, its points' SVG)); the answer is held, so
# identity cannot be reused by another.
_last_drawn: dict[str, tuple[Exploration, tuple, tuple[Scatter, SafeString]]] = {}
_lock = threading.Lock()


def _clear() -> None:
    with _lock:
        _last_drawn.clear()


caches.register(__name__, _clear, "_last_drawn")


@dataclass(frozen=True)
class Line:
    point: Point
    points: str  # the polyline's points, in viewBox units
    color: str
    label: str
    href: str


@dataclass(frozen=True)
class Parallel:
    axes: list[tuple[Axis, float, str]]  # each axis, its x position (0..1), its title
    lines: list[Line]
    legend: list[Legend]


def parallel(ex: Exploration, color_by: str, y_label: str) -> Parallel:
    count = len(ex.keys) + 1
    positions = [0.04 + 0.92 * i / (count - 1) for i in range(count)]
    axes = [axis(k, [p.values[i] for p in ex.points]) for i, k in enumerate(ex.keys)]
    axes.append(axis("outcome", [p.y for p in ex.points], False))
    titles = [*ex.keys, y_label]
    colors, legend = palette(ex.points, color_by)
    lines = []
    for p in ex.points:
        values: list[Value] = [*p.values, p.y]
        coords = " ".join(
            f"{pos * SIZE:.1f},{(1 - a.place(v)) * SIZE:.1f}"
            for a, pos, v in zip(axes, positions, values, strict=True)
        )
        parts = [f"{k} {setting(v, k)}" for k, v in zip(ex.keys, p.values, strict=True)]
        label = f"{p.run.id} · {' · '.join(parts)} · {y_label} {metric(p.y)}"
        lines.append(Line(p, coords, colors[_group(p, color_by)], label, run_url(p.run)))
    return Parallel(list(zip(axes, positions, titles, strict=True)), lines, legend)


# A thousand runs are a thousand links: written here in one pass, not by a template loop
# (ten times slower), every value escaped.
def marks_svg(marks: Sequence[Mark]) -> SafeString:
    return mark_safe(  # noqa: S308  each value below is escaped
        "".join(
            f'<a class="xp-point" href="{escape(m.href)}" data-label="{escape(m.label)}">'
            f'<ellipse class="xp-hit" cx="{m.x:.1f}" cy="{m.y:.1f}" rx="14" ry="22"/>'
            f'<path d="M{m.x:.1f} {m.y:.1f}h0" stroke="{m.color}" '
            f'vector-effect="non-scaling-stroke"/><title>{escape(m.label)}</title></a>'
            for m in marks
        )
    )


def lines_svg(lines: Sequence[Line]) -> SafeString:
    return mark_safe(  # noqa: S308  each value below is escaped
        "".join(
            f'<a class="xp-line" href="{escape(ln.href)}" data-label="{escape(ln.label)}">'
            f'<polyline points="{ln.points}" stroke="{ln.color}" '
            f'vector-effect="non-scaling-stroke"/><title>{escape(ln.label)}</title></a>'
            for ln in lines
        )
    )


def missing_list(missing: Sequence[Missing]) -> SafeString:
    return mark_safe(  # noqa: S308  each value below is escaped
        "".join(
            f'<li><a href="{escape(run_url(m.run))}">{escape(visible(m.run.id))}</a>: '
            f"{escape(visible(m.why))}</li>"
            for m in missing
        )
    )
