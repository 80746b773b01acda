"""Numbers for people: units on durations, rates, shares and learning rates, and one precision
for every value of a table column."""

from __future__ import annotations

import math
import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discovery.metrics import unit
from tuner_site.formatting import (
    Column,
    brief,
    column,
    column_decimals,
    duration,
    metric,
    named,
    tick,
)

from .number_table import COLUMNS, METRIC, TICKS


def decimals(text: str) -> int:
    number = re.sub(r"[^0-9.]", "", text.split()[0].rstrip("%"))
    return len(number.partition(".")[2])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("train_runtime", "s"),
        ("eval_runtime", "s"),
        ("step_time", "s"),
        ("train_samples_per_second", "samples/s"),
        ("eval_steps_per_second", "steps/s"),
        ("tokens_per_sec", "tokens/s"),
        ("learning_rate", "lr"),
        ("lr", "lr"),  # MLX's name for it
        ("rewards/accuracies", "%"),
        ("eval_rewards/accuracies", "%"),
        ("mean_token_accuracy", "%"),
        ("frac_reward_zero_std", "%"),
        ("completions/clipped_ratio", "%"),
        ("log_odds_ratio", ""),  # a ratio, but no share of 1
        ("loss", ""),
        ("kl", ""),
    ],
)
def test_the_vocabulary_knows_each_metrics_unit(name, expected):
    assert unit(name) == expected


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("train_runtime", 9000.0, "2h 30m 0s"),
        ("eval_runtime", 58.6, "58.6s"),
        ("step_time", 2.5, "2.5s"),
        ("train_samples_per_second", 3.418, "3.418 samples/s"),
        ("eval_steps_per_second", 0.425, "0.425 steps/s"),
        ("tokens_per_sec", 900.0, "900 tokens/s"),
        ("learning_rate", 2e-4, "2e-4"),
        ("learning_rate", 1.8333333e-7, "1.833e-7"),
        ("learning_rate", 0.0, "0"),
        ("rewards/accuracies", 0.6623, "66.2%"),
        ("rewards/accuracies", 1.0, "100%"),
        ("loss", 0.263, "0.263"),
        ("loss", math.nan, "NaN"),
        ("train_runtime", math.inf, "∞"),
        ("loss", None, "—"),
    ],
)
def test_a_value_shows_with_its_metrics_unit(name, value, shown):
    assert named(value, name) == shown


def test_durations_under_a_minute_keep_their_tenths():
    assert [duration(x) for x in (0.2022, 0.123, 2.5, 59.94, 60, 600, 25107.9)] == [
        "0.202s",
        "0.123s",
        "2.5s",
        "59.9s",
        "1m 0s",
        "10m 0s",
        "6h 58m 28s",
    ]
    assert duration(-1) == "" and duration(math.nan) == "" and duration("1") == ""


def test_scientific_notation_writes_its_exponent_as_configs_do():
    assert metric(1.8333e-7) == "1.833e-7" and metric(1e20) == "1.000e20"


@pytest.mark.parametrize(
    ("values", "shown"),
    [
        # A loss column: the largest keeps four digits, so every value has four decimals.
        ([0.3835, 0.263, 0.0131, 0.0126], ["0.3835", "0.2630", "0.0131", "0.0126"]),
        ([2.15, 0.27, 1.0], ["2.150", "0.270", "1.000"]),
        ([-118.28, -108.5, -126.4], ["-118.3", "-108.5", "-126.4"]),
        ([26931.0, 3012.0], ["26,931", "3,012"]),  # whole numbers
        ([1500.5, 0.5], ["1,500.50", "0.50"]),
        # The smallest keeps two digits, at most six decimals.
        ([64.79913, 0.0005], ["64.79913", "0.00050"]),
        ([0.0004, 0.00012], ["4.000e-4", "1.200e-4"]),  # all tiny: scientific
        ([12.5, -1e-8], ["12.500000", "0.000000"]),  # no "-0.000000"
    ],
)
def test_a_column_writes_every_value_with_one_precision(values, shown):
    write = column(values)
    assert [write(v) for v in values] == shown


def test_a_column_spells_out_what_is_not_a_number_and_keeps_the_rest_alike():
    write = column([0.5, math.nan, None, math.inf, 0.25])
    assert [write(v) for v in (0.5, math.nan, None, math.inf, -math.inf)] == [
        "0.5000",
        "NaN",
        "—",
        "∞",
        "−∞",
    ]


def test_units_in_a_column():
    lr = column([2e-4, 1.8333e-7, 0.0], "lr")
    assert [lr(v) for v in (2e-4, 1.8333e-7, 0.0)] == ["2.000e-4", "1.833e-7", "0"]
    share = column([0.55, 0.99, 0.8734], "%")
    assert [share(v) for v in (0.55, 0.99, 0.8734)] == ["55.0%", "99.0%", "87.3%"]
    whole = column([0.5, 1.0, 0.0], "%")
    assert [whole(v) for v in (0.5, 1.0, 0.0)] == ["50%", "100%", "0%"]
    rate = column([900.0, 912.5], "tokens/s")
    assert rate(900.0) == "900.0 tokens/s"
    runtime = column([9000.0, 58.6], "s")
    assert [runtime(v) for v in (9000.0, 58.6)] == ["2h 30m 0s", "58.6s"]


@given(
    st.lists(
        st.floats(min_value=-1e9, max_value=1e9, allow_nan=False).filter(
            lambda v: v == 0 or abs(v) >= 1e-9
        ),
        min_size=1,
        max_size=30,
    )
)
def test_every_value_of_any_column_has_the_same_decimals(values):
    write = column(values)
    texts = [write(v) for v in values]
    places = column_decimals(values)
    if places is None:
        assert all("e" in t or t == "0" for t in texts), texts
    else:
        assert {decimals(t) for t in texts} == {places}, texts
        # Rounded to those decimals, not cut: each still reads as its value.
        for v, t in zip(values, texts, strict=True):
            assert abs(float(t.replace(",", "")) - v) <= 0.5 * 10**-places + 1e-9 * abs(v)


def test_a_saved_value_in_a_line():
    assert brief([0.9398, 0.8938, 0.9252], "val_loss") == "3 values: 0.9398, 0.8938, 0.9252"
    assert brief(list(range(10))).startswith("10 values: …, 4, 5")
    assert brief([]) == "none" and brief({"a": 1}) == "1 field"
    assert brief(5e-5, "learning_rate") == "5e-5" and brief("x" * 300).endswith("…")


@pytest.mark.parametrize(("value", "shown"), METRIC)
def test_one_number_reads_as_the_shared_table_says(value, shown):
    assert metric(value) == shown


@pytest.mark.parametrize(("unit", "decimals", "value", "shown"), COLUMNS)
def test_a_column_format_reads_as_the_shared_table_says(unit, decimals, value, shown):
    assert Column(unit, decimals)(value) == shown


@pytest.mark.parametrize(("value", "unit", "shown"), TICKS)
def test_an_axis_label_reads_as_the_shared_table_says(value, unit, shown):
    assert tick(value, unit) == shown


def test_one_value_reads_alike_in_a_table_and_alone():
    # Issue 21's three drifts, server side: a share, a learning rate, a half.
    assert column([0.8123, 0.7931], "%")(0.8123) == named(0.8123, "mean_token_accuracy") == "81.2%"
    assert column([2e-4, 1e-4], "lr")(2e-4) == named(2e-4, "learning_rate") == "2e-4"
    assert column([1234.5, 3012.0])(1234.5) == metric(1234.5) == "1,235"


def test_the_fast_rounding_writes_what_decimal_rounding_does():
    """`_rounded` formats the float itself unless the dropped digits could be an exact half,
    and `_significant` goes through f decimals: the same text as rounding the exact value half
    away from zero with Decimal, on halves, near-halves, powers of ten and random values."""
    from decimal import ROUND_HALF_UP, Decimal, localcontext

    from tuner_site.formatting import _rounded, _significant

    def exact(value: float, spec: str) -> str:  # as _rounded always did
        with localcontext(rounding=ROUND_HALF_UP):
            return format(Decimal(value), spec)

    def significant(value: float, digits: int) -> str:
        text = exact(value, f".{digits}g")
        return text.rstrip("0").rstrip(".") if "." in text and "e" not in text else text

    rng = random.Random(24)
    values = [0.0, -0.0, 0.5, 2.5, -2.5, 1.125, 0.125, 25.0, 9.5, 999.5, 1234.5, 2.675, 9.99951]
    values += [1e-7, 1.5e-7, 5e-324, 1.7976931348623157e308, 999.96, 0.00099996, 123456789.5]
    values += [rng.randint(-(10**6), 10**6) / 2 ** rng.randint(0, 12) for _ in range(3000)]
    values += [rng.uniform(-1, 1) * 10 ** rng.randint(-12, 16) for _ in range(3000)]
    values += [round(rng.uniform(-1000, 1000), rng.randint(0, 5)) for _ in range(3000)]
    values += [0, 7, 25, -35, 2**53 - 1, 2**53 + 1, 10**20, rng.randint(-(10**9), 10**9)]
    for v in values:
        for spec in (".0f", ".1f", ",.0f", ",.2f", ",.6f", ".0e", ".1e", ".3e", ".3g"):
            assert _rounded(v, spec) == exact(v, spec), (v, spec)
        for digits in (1, 3, 4):
            assert _significant(v, digits) == significant(v, digits), (v, digits)
