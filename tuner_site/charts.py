"""Server-rendered SVG line charts: raw values, a moving average, checkpoint marks."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate

WIDTH, HEIGHT = 720, 220
PAD_L, PAD_R, PAD_T, PAD_B = 56, 12, 12, 28
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


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    raw: str
    smooth: str
    points: int
    window: int


@dataclass(frozen=True)
class Mark:
    x: float
    label: str
    best: bool


@dataclass(frozen=True)
class Tick:
    pos: float
    label: str


@dataclass(frozen=True)
class Chart:
    title: str
    series: tuple[Series, ...]
    marks: tuple[Mark, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    width: int = WIDTH
    height: int = HEIGHT
    plot_left: int = PAD_L
    plot_right: int = WIDTH - PAD_R
    plot_top: int = PAD_T
    plot_bottom: int = HEIGHT - PAD_B


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Centred: a trailing average lags a falling loss by half a window and shifts its shape.

    Near either end the window narrows on both sides, so it stays centred. Prefix sums err by about
    1e-12 of the series' largest value, far below a pixel of a y-axis that spans it.
    """
    half = window // 2
    sums = [0.0, *accumulate(values)]
    n = len(values)
    out = []
    for i in range(n):
        h = min(half, i, n - 1 - i)
        lo, hi = i - h, i + h + 1
        out.append((sums[hi] - sums[lo]) / (hi - lo))
    return out


MAX_POINTS = 1200  # about two per horizontal pixel of the plot


def thin(
    points: Sequence[tuple[float, float]], limit: int = MAX_POINTS
) -> list[tuple[float, float]]:
    """At most `limit` points: each bucket keeps its lowest and highest, in step order.

    Spikes (a NaN-adjacent blow-up, a loss jump) stay visible, unlike with plain striding.
    """
    if len(points) <= limit:
        return list(points)
    buckets = limit // 2
    size = len(points) / buckets
    out: list[tuple[float, float]] = []
    for b in range(buckets):
        chunk = points[int(b * size) : int((b + 1) * size)]
        if not chunk:
            continue
        lo = min(chunk, key=lambda p: p[1])
        hi = max(chunk, key=lambda p: p[1])
        out.extend(sorted({lo, hi}))
    return out


def smoothing_window(n: int) -> int:
    """An odd number of points, so that the window centres on its point."""
    return max(1, min(51, n // 20)) | 1


def _fmt(v: float) -> str:
    """A tick label short enough for the axis: `2.5e-5`, `-1e308`, `0.35`."""
    if v == 0:
        return "0"
    if abs(v) >= 1000 or abs(v) < 0.01:
        mantissa, exponent = f"{v:.1e}".split("e")
        return f"{mantissa.removesuffix('.0')}e{int(exponent)}"
    return f"{v:.3g}"


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


MARK_GAP = 5.0  # pixels between checkpoint marks: thousands of checkpoints make one band


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
) -> Chart | None:
    """A chart of the finite values of each column; None when nothing is plottable."""
    data = {name: list(zip(steps, values, strict=True)) for name, values in columns.items()}
    return points_chart(title, data, checkpoint_steps, best_step)


def points_chart(
    title: str,
    points: Mapping[str, Sequence[tuple[float, float | None]]],
    checkpoint_steps: Sequence[int] = (),
    best_step: int | None = None,
) -> Chart | None:
    """One line per name, each with its own steps; None when nothing is plottable.

    Colours follow the names' order, whether or not a name has points to draw.
    """
    colors = {name: COLORS[i % len(COLORS)] for i, name in enumerate(points)}
    data: dict[str, list[tuple[float, float]]] = {
        name: kept
        for name, pts in points.items()
        if (kept := [(s, v) for s, v in pts if v is not None and math.isfinite(v)])
    }
    if not data:
        return None
    xs = [s for pts in data.values() for s, _ in pts]
    x0, x1 = min(xs), max(max(xs), *(checkpoint_steps or [0]))
    y0, y1 = _y_range([v for pts in data.values() for _, v in pts])
    if x0 == x1:
        x1 = x0 + 1
    left, right, top, bottom = PAD_L, WIDTH - PAD_R, PAD_T, HEIGHT - PAD_B
    x_unit, y_unit = _unit(x0, x1), _unit(y0, y1)

    def sx(x: float) -> float:
        return round(left + x_unit(x) * (right - left), 1)

    def py(u: float) -> float:
        return round(bottom - u * (bottom - top), 1)

    series = []
    for name, pts in data.items():
        # Per series: eval losses are logged far less often than training losses.
        window = smoothing_window(len(pts))
        # Averaged on the 0..1 scale, where no sum of values overflows.
        units = [(s, y_unit(v)) for s, v in pts]
        avg = list(
            zip((s for s, _ in units), moving_average([u for _, u in units], window), strict=True)
        )
        raw = " ".join(f"{sx(s)},{py(u)}" for s, u in thin(units))
        smooth = " ".join(f"{sx(s)},{py(u)}" for s, u in thin(avg))
        series.append(Series(name, colors[name], raw, smooth, len(pts), window))
    marks = _spaced(
        [Mark(sx(s), f"checkpoint-{s}", s == best_step) for s in checkpoint_steps if x0 <= s <= x1]
    )
    x_ticks = tuple(Tick(sx(t), f"{t:g}") for t in _nice_ticks(x0, x1) if x0 <= t <= x1)
    y_ticks = tuple(Tick(py(y_unit(t)), _fmt(t)) for t in _nice_ticks(y0, y1) if y0 <= t <= y1)
    return Chart(title, tuple(series), marks, x_ticks, y_ticks)
