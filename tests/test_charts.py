"""Server-rendered charts: finite points only, a stated window, thinning that keeps spikes."""

from __future__ import annotations

import math

from tuner_site.charts import MAX_POINTS, line_chart, moving_average, smoothing_window, thin


def test_non_finite_values_are_left_out_and_empty_series_give_no_chart():
    chart = line_chart("Loss", [1, 2, 3], {"loss": [1.0, math.nan, math.inf]})
    assert chart.series[0].points == 1
    assert line_chart("Loss", [1, 2], {"loss": [math.nan, None]}) is None


def test_the_moving_average_window_grows_with_the_series_and_is_odd():
    assert [smoothing_window(n) for n in (10, 400, 420, 10**6)] == [1, 21, 21, 51]


def test_the_moving_average_is_centred_so_a_falling_curve_does_not_lag():
    assert moving_average([1, 2, 3, 4], 3) == [1, 2, 3, 4]
    assert moving_average([1, 2, 9, 4, 5], 5) == [1, 4, 4.2, 6, 5]
    falling = [100.0 - i for i in range(100)]
    # A centred average of a straight line is the line itself, up to its ends.
    assert moving_average(falling, 21) == falling
    assert moving_average([5.0], 21) == [5.0] and moving_average([], 5) == []


def test_long_series_are_thinned_but_keep_their_spikes():
    points = [(float(i), 1.0) for i in range(20_000)]
    points[12_345] = (12_345.0, 50.0)
    thinned = thin(points)
    assert len(thinned) <= MAX_POINTS
    assert (12_345.0, 50.0) in thinned
    assert [p[0] for p in thinned] == sorted(p[0] for p in thinned)
    chart = line_chart("Loss", list(range(20_000)), {"loss": [p[1] for p in points]})
    assert len(chart.series[0].raw.split()) <= MAX_POINTS


def test_checkpoints_are_marked_and_the_best_one_flagged():
    chart = line_chart("Loss", [10, 20, 30], {"loss": [3.0, 2.0, 1.0]}, [10, 30], best_step=30)
    assert [(m.label, m.best) for m in chart.marks] == [
        ("checkpoint-10", False),
        ("checkpoint-30", True),
    ]


def test_thousands_of_checkpoint_marks_are_spaced_and_keep_the_best():
    steps = list(range(1, 5001))
    chart = line_chart("Loss", steps, {"loss": [1.0 / s for s in steps]}, steps, best_step=2345)
    assert len(chart.marks) <= 700 // 5
    xs = [m.x for m in chart.marks]
    assert all(b - a >= 5 for a, b in zip(xs, xs[1:], strict=False))
    assert [m.label for m in chart.marks if m.best] == ["checkpoint-2345"]
