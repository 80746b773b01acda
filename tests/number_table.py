"""One table of values and how people read them, for the server's rules (tuner_site/formatting.py,
tuner_site/charts.py) and the page's (static/js/dashboard.js): tests/test_formatting.py checks the
server against it, tests/test_browser_formatting.py the page, so the two cannot drift apart."""

from __future__ import annotations

import math

# metric(value): the one format for a number on its own.
METRIC = [
    (None, "—"),
    (math.nan, "NaN"),
    (math.inf, "∞"),
    (-math.inf, "−∞"),
    (0, "0"),
    (-0.0, "0"),
    (1234, "1,234"),
    (1234.5, "1,235"),  # an exact half rounds away from zero, on the page as on the server
    (-1234.5, "-1,235"),
    (2.5, "2.5"),
    (999.4, "999.4"),
    (999.5, "1,000"),
    (9.99951, "10"),
    (0.8123, "0.8123"),
    (0.30000000000000004, "0.3"),
    (123.45, "123.5"),
    (0.0012345, "0.001234"),
    (0.00099999, "1.000e-3"),
    (2e-4, "2.000e-4"),
    (1.8333e-7, "1.833e-7"),
    (-3.7e-9, "-3.700e-9"),
    (12345678.9, "12,345,679"),
    (1e15, "1.000e15"),
    (2.5e20, "2.500e20"),
]

# Column(unit, decimals)(value): every value of a table column, and of a chart series' readout.
COLUMNS = [
    ("%", 1, 0.8123, "81.2%"),  # mean_token_accuracy
    ("%", 1, 0.8125, "81.3%"),
    ("%", 1, 0.6625, "66.3%"),
    ("%", 0, 1.0, "100%"),
    ("%", 1, math.nan, "NaN"),
    ("lr", 0, 2e-4, "2e-4"),  # a learning rate, as configs write it
    ("lr", 3, 1.8333e-7, "1.833e-7"),
    ("lr", 3, 2e-4, "2.000e-4"),
    ("", 0, 1234.5, "1,235"),
    ("", 2, 1234.5, "1,234.50"),
    ("", 2, 1.125, "1.13"),
    ("", 4, 0.8125, "0.8125"),
    ("", 3, 0.8125, "0.813"),
    ("", 4, -0.00004, "0.0000"),  # no "-0.0000"
    ("", 4, -0.0004, "-0.0004"),
    ("", None, 0.0004, "4.000e-4"),
    ("", 3, None, "—"),
    ("", 3, math.inf, "∞"),
    ("", 0, 2e15, "2.000e15"),
    ("s", None, 25107.9, "6h 58m 28s"),
    ("s", None, 90.5, "1m 31s"),
    ("s", None, 59.96, "1m 0s"),
    ("s", None, 2.25, "2.3s"),
    ("s", None, 0.2022, "0.202s"),
    ("s", None, -1.0, "-1"),
    ("tokens/s", 1, 912.25, "912.3 tokens/s"),
    ("samples/s", 3, 1.705, "1.705 samples/s"),
]

# tick(value, unit): an axis label.
TICKS = [
    (0, "", "0"),
    (0.35, "", "0.35"),
    (10.25, "", "10.25"),
    (1250, "", "1,250"),
    (30000, "", "3e4"),
    (2.5e-5, "", "2.5e-5"),
    (-1e308, "", "-1e308"),
    (0.30000000000000004, "", "0.3"),
    (0.85, "%", "85%"),
    (0.125, "%", "12.5%"),
]

# moving_average(steps, values, window): compared value for value, exactly.
AVERAGES = [
    ([1, 2, 3, 4, 5], [5.0, 4.0, 3.5, 3.0, 1.0], 2),
    ([10, 20, 30, 40, 50, 60, 70], [2.5, 2.1, 1.9, 1.7, 1.72, 1.6, 1.55], 20),
    ([0, 5, 10, 200, 205, 210], [0.9, 0.8, 0.81, 0.5, 0.45, 0.47], 50),  # a gap
    ([3], [1.5], 10),
    ([], [], 5),
]
