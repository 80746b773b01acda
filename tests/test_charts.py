"""Server-rendered charts: finite points only, one window in steps, sparse series marked,
gaps broken, thinning that keeps spikes, and labels in HTML so they never shrink."""

from __future__ import annotations

import math

from tuner_site.charts import (
    MARK_GAP,
    MAX_POINTS,
    VIEW_W,
    gap_starts,
    line_chart,
    moving_average,
    points_chart,
    smoothing_steps,
    thin,
    with_pass_rates,
)

from .number_table import AVERAGES


def test_non_finite_values_are_left_out_and_empty_series_give_no_chart():
    chart = line_chart("Loss", [1, 2, 3], {"loss": [1.0, math.nan, math.inf]})
    assert chart.series[0].points == 1
    assert line_chart("Loss", [1, 2], {"loss": [math.nan, None]}) is None


def test_the_smoothing_window_is_a_round_number_of_steps_for_the_charts_span():
    assert [smoothing_steps(span) for span in (0, 10, 300, 400, 3000, 10**6)] == [
        1,
        1,
        10,
        20,
        100,
        50000,
    ]


def test_the_moving_average_is_centred_in_steps_so_a_falling_curve_does_not_lag():
    assert moving_average([1, 2, 3, 4], [1, 2, 3, 4], 2) == [1, 2, 3, 4]
    assert moving_average([1, 2, 3, 4, 5], [1, 2, 9, 4, 5], 4) == [1, 4, 4.2, 6, 5]
    steps = list(range(0, 500, 5))
    falling = [100.0 - s / 5 for s in steps]
    # A centred average of a straight line is the line itself, up to its ends.
    assert moving_average(steps, falling, 100) == falling
    # Logged every 5 steps or every step, a window of 20 steps averages the same stretch.
    sparse = moving_average([0, 5, 10, 15, 20], [0.0, 5, 10, 15, 20], 20)
    dense = moving_average(list(range(21)), [float(s) for s in range(21)], 20)
    assert sparse == [dense[s] for s in (0, 5, 10, 15, 20)]
    assert moving_average([3], [5.0], 21) == [5.0] and moving_average([], [], 5) == []


def test_the_fast_average_and_thinning_are_the_plain_rules():
    """moving_average and thin spell their loops out for speed: the same numbers as the plain
    statement of each rule, on steps with repeats, gaps and fractions."""
    from bisect import bisect_left, bisect_right

    steps = sorted(
        [i * 1.5 for i in range(900)] + [7.5, 7.5, 300.0] + [5000.0 + i for i in range(9)]
    )
    values = [((i * 7919) % 101) / 3 for i in range(len(steps))]

    def plain_average(window: float) -> list[float]:
        out = []
        for s in steps:
            h = min(window / 2, s - steps[0], steps[-1] - s)
            lo, hi = bisect_left(steps, s - h), bisect_right(steps, s + h)
            out.append(sum(values[lo:hi]) / (hi - lo))
        return out

    for window in (1, 10, 25, 400):
        fast = moving_average(steps, values, window)
        assert all(
            math.isclose(a, b, rel_tol=1e-9)
            for a, b in zip(fast, plain_average(window), strict=True)
        )
    points = list(zip(steps, values, strict=True)) * 2
    points.sort()
    size = len(points) / 10
    plain = []
    for b in range(10):
        chunk = points[int(b * size) : int((b + 1) * size)]
        lo, hi = min(chunk, key=lambda p: p[1]), max(chunk, key=lambda p: p[1])
        plain.extend(sorted({lo, hi}))
    assert thin(points, 20) == plain


def test_long_series_are_thinned_but_keep_their_spikes():
    points = [(float(i), 1.0) for i in range(20_000)]
    points[12_345] = (12_345.0, 50.0)
    thinned = thin(points)
    assert len(thinned) <= MAX_POINTS
    assert (12_345.0, 50.0) in thinned
    assert [p[0] for p in thinned] == sorted(p[0] for p in thinned)
    chart = line_chart("Loss", list(range(20_000)), {"loss": [p[1] for p in points]})
    assert chart.series[0].raw.count("L") <= MAX_POINTS


def test_checkpoints_are_marked_and_the_best_one_flagged():
    chart = line_chart("Loss", [10, 20, 30], {"loss": [3.0, 2.0, 1.0]}, [10, 30], best_step=30)
    assert [(m.label, m.best) for m in chart.marks] == [
        ("checkpoint-10", False),
        ("checkpoint-30", True),
    ]
    assert chart.config("/api/x/")["marks"] == [10, 30] and chart.config("/api/x/")["best"] == 30


def test_a_dense_series_is_smoothed_and_a_sparse_one_drawn_with_markers_only():
    steps = list(range(5, 3001, 5))
    chart = line_chart(
        "Loss",
        steps,
        {
            "loss": [1.0 / s for s in steps],
            "eval_loss": [1.0 if s % 500 == 0 else None for s in steps],
        },
    )
    loss, eval_loss = chart.series
    assert chart.window == 100 and loss.smooth and not loss.markers and not loss.sparse
    assert eval_loss.sparse and not eval_loss.smooth
    assert eval_loss.markers.count("h0") == eval_loss.points == 6
    assert chart.smoothed and chart.y_title == "Loss" and chart.x_title == "step"


def test_a_chart_with_no_smoothed_line_has_no_window():
    chart = line_chart("Loss", [1, 60], {"val_loss": [0.9, 0.8]})
    assert chart.window == 0 and not chart.smoothed and chart.series[0].markers
    assert chart.y_title == "val_loss"  # one series: its name is the axis title


def test_gaps_break_the_line_and_a_point_alone_between_gaps_gets_a_marker():
    steps = [*range(1, 101), 600, *range(1200, 1300)]
    assert gap_starts(steps) == [100, 101]
    chart = line_chart("Loss", steps, {"loss": [1.0] * len(steps)})
    s = chart.series[0]
    assert s.breaks == (600, 1200) and s.raw.count("M") == 3
    assert s.markers.count("h0") == 1  # step 600, alone


def test_ticks_are_percentages_of_the_plot_for_html_labels():
    chart = line_chart("Loss", [0, 100], {"loss": [0.0, 1.0]})
    assert all(0 <= t.pos <= 100 for t in chart.x_ticks + chart.y_ticks)
    assert [t.label for t in chart.x_ticks][0] == "0" and chart.x_ticks[-1].pos == 100


def test_a_comparison_marks_each_runs_best_and_lists_runs_without_the_metric():
    chart = points_chart(
        "loss",
        {"a/1": [(10, 2.0), (20, 1.0), (30, 1.5)], "b/2": [], "c/3": [(10, 3.0), (40, 2.0)]},
        best_steps={"a/1": 25, "b/2": None, "c/3": 40},
        y_title="loss",
    )
    assert chart.missing == ("b/2",)
    a, c = chart.series
    assert (a.color, c.color) == ("#2563eb", "#059669")  # colours follow the runs' order
    # Best at step 25: the dot sits on the value logged at or before it (step 20, a third in).
    assert a.best.startswith("M333.3,") and c.best.startswith("M1000.0,")
    assert dict(chart.best_steps) == {"a/1": 25, "c/3": 40}
    assert chart.config("/api/compare/?run=a/1")["bests"] == {"a/1": 25, "c/3": 40}


def test_thousands_of_checkpoint_marks_are_spaced_and_keep_the_best():
    steps = list(range(1, 5001))
    chart = line_chart("Loss", steps, {"loss": [1.0 / s for s in steps]}, steps, best_step=2345)
    assert len(chart.marks) <= VIEW_W // MARK_GAP + 1
    xs = [m.x for m in chart.marks]
    assert all(b - a >= MARK_GAP for a, b in zip(xs, xs[1:], strict=False))
    assert [m.label for m in chart.marks if m.best] == ["checkpoint-2345"]


def test_the_shared_tables_averages_keep_their_ends_and_stay_within_their_values():
    # tests/test_browser_formatting.py runs the page's moving average on the same table.
    for steps, values, window in AVERAGES:
        averaged = moving_average(steps, values, window)
        assert len(averaged) == len(values)
        if values:  # the window narrows to nothing at either end: the raw value
            assert math.isclose(averaged[0], values[0]) and math.isclose(averaged[-1], values[-1])
            assert all(min(values) - 1e-12 <= a <= max(values) + 1e-12 for a in averaged)


def test_pass_rates_sit_on_a_right_axis_from_0_to_100_percent():
    chart = line_chart("Loss", [0, 100, 200], {"loss": [2.0, 1.0, 0.5]})
    assert chart is not None and chart.x_range == (0, 200)
    found = {
        "levels": [(100, 4, 4, "checkpoint-100"), (200, 0, 4, "checkpoint-200")],
        # Outside the plotted steps, or without cases: not drawn.
        "empty": [(900, 1, 2, "checkpoint-900"), (100, 0, 0, "checkpoint-100")],
    }
    drawn = with_pass_rates(chart, found)
    ((levels),) = drawn.rates
    assert [(p.checkpoint, p.label, p.x) for p in levels.points] == [
        ("checkpoint-100", "4/4", VIEW_W / 2),
        ("checkpoint-200", "0/4", VIEW_W),
    ]
    top, bottom = (p.y for p in levels.points)
    assert 0 < top < 20 and 280 < bottom < 300  # whole dots at 100 % and 0 %
    assert [t.label for t in drawn.rate_ticks] == ["0%", "25%", "50%", "75%", "100%"]
    assert drawn.config("x")["rates"][0]["values"] == [1.0, 0.0]
    # The left axis is as it was; nothing to draw, no right axis.
    assert drawn.series == chart.series and drawn.y_ticks == chart.y_ticks
    assert with_pass_rates(chart, {"empty": found["empty"]}).rate_ticks == ()
