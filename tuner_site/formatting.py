"""Numbers and durations for people: one format for pages and the CLI."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any, ClassVar

from discovery.metrics import unit
from discovery.values import as_float, finite


def metric(value: Any) -> str:
    """One format for every number people read, on pages and in the CLI: whole numbers and
    anything from 1,000 up with thousands separators and no decimals, four significant digits
    below that, scientific notation only for the very small and the very large; NaN and the
    infinities spelled out. Halves round away from zero (1234.5 reads 1,235), as the charts'
    readout does in static/js/dashboard.js, which follows every rule of this module."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) and abs(value) >= 10**15:
        value = as_float(value)  # the number rule: beyond any float, it is missing
        if value is None:
            return "—"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
    magnitude = abs(value)
    if magnitude >= 1e15:
        return _scientific(float(value), 3)
    if isinstance(value, int) or value.is_integer() or magnitude >= 999.5:
        return _fixed(value, 0)
    if value != 0 and magnitude < 1e-3:
        return _scientific(value, 3)
    return _significant(value, 4)


def tick(value: float, unit: str = "") -> str:
    """An axis label, short: `2.5e-5`, `0.35`, `10.25`, `1,250`, `3e4`; a share's as a
    percentage (`80%`), as its values read."""
    if unit == "%":
        return f"{tick(value * 100)}%"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 10_000 or magnitude < 0.01:
        return _scientific(value, 1).replace(".0e", "e")
    return _fixed(value, 0) if magnitude >= 1000 else _significant(value, 4)


def _rounded(value: float, spec: str) -> str:
    """`value` written by the format `spec` (`[,].<digits>` then f, e or g), an exact half
    rounded away from zero (1.125 to two decimals is 1.13), as JavaScript's toFixed,
    toPrecision and toExponential round; Python's own formatting rounds it to even (1.12)."""
    if spec[-1] != "g" and value and _exact_float(value):
        # The float's own formatting, unless the digits it dropped could be an exact half:
        # the same text, three times faster (pages write hundreds of numbers).
        text = format(value, spec)
        digits = int(spec[spec.index(".") + 1 : -1])
        if spec[-1] == "f" and not _may_be_half(value, digits):
            return text
        if spec[-1] == "e":
            mantissa, exponent = text.split("e")
            # A half rounded down keeps the exponent; one rounded up reads the same either way.
            if not _may_be_half(value, digits - int(exponent)):
                return f"{mantissa}e{int(exponent):+d}"  # Decimal's exponent: "e-7"
    with localcontext(rounding=ROUND_HALF_UP):
        return format(Decimal(value), spec)


def _exact_float(value: float) -> bool:
    """A finite float, or an integer a float holds exactly (format() writes ints as floats)."""
    if type(value) is float:
        return math.isfinite(value)
    return type(value) is int and -(2**53) < value < 2**53


def _may_be_half(value: float, cut: int) -> bool:
    """Whether the digits after the `cut`-th decimal place of `value` could be an exact half.
    A float is an odd number over 2**n, whose decimals end in a 5 at the n-th place after the
    point: a half only when that place is the first one dropped (or, whole, when digits left
    of the point are dropped)."""
    return cut < 0 or value.as_integer_ratio()[1] == 2 << cut


def _significant(value: float, digits: int) -> str:
    """`digits` significant digits, trailing zeros dropped: 0.8123, 2.5, 10 (9.99951)."""
    place = Decimal(value).adjusted() if value else 0
    if -4 <= place < digits - 1:
        # Where g writes decimals (every caller's range), they are the f decimals that keep
        # `digits` (and f has the fast path): 10.000 for 9.99951 reads 10 either way.
        text = _rounded(value, f".{digits - 1 - place}f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    text = _rounded(value, f".{digits}g")
    return text.rstrip("0").rstrip(".") if "." in text and "e" not in text else text


def _scientific(value: float, decimals: int) -> str:
    """`1.833e-7`: the exponent without padding, as configs and JavaScript write it."""
    if value == 0:
        return "0"
    mantissa, exponent = _rounded(value, f".{decimals}e").split("e")
    return f"{mantissa}e{int(exponent)}"


def _mantissa_decimals(value: float) -> int:
    """Decimals a learning rate's mantissa needs, up to 3: 2e-4 needs none, 1.833e-7 three."""
    mantissa = _rounded(value, ".3e").split("e")[0].rstrip("0")
    return len(mantissa.partition(".")[2])


def _fixed(value: float, decimals: int) -> str:
    text = _rounded(value, f",.{decimals}f")
    # A value that rounds to zero is zero, not "-0.000".
    return text[1:] if text.startswith("-") and not any(c in text for c in "123456789") else text


def with_unit(value: Any, unit: str) -> str:
    """One value with its unit (discovery.metrics.unit): "6h 58m 28s", "1.705 samples/s",
    "66.23%", "2e-4"; anything that is not a finite number as `metric` writes it."""
    v = finite(value)
    if v is None or not unit:
        return metric(value)
    if unit == "s":
        return duration(v) or metric(value)
    if unit == "%":
        return column([v], unit)(v)
    if unit == "lr":
        return _scientific(v, _mantissa_decimals(v))
    return f"{metric(value)} {unit}"


def named(value: Any, metric_name: str) -> str:
    """A value of the metric `metric_name`, with that metric's unit."""
    return with_unit(value, unit(metric_name))


def brief(value: Any, metric_name: str = "", limit: int = 6) -> str:
    """A saved value in a line: a number as `named`, a list as its count and its last few
    items ("3 values: 0.9398, 0.8938, 0.9252"), anything else as short text."""
    if isinstance(value, list):
        if not value:
            return "none"
        shown = ", ".join(brief(v, metric_name, limit) for v in value[-limit:])
        count = f"{len(value):,} value{'s' if len(value) > 1 else ''}"
        return f"{count}: {'…, ' if len(value) > limit else ''}{shown}"
    if isinstance(value, dict):
        return f"{len(value):,} field{'s' if len(value) != 1 else ''}"
    text = named(value, metric_name) if as_float(value) is not None else visible(value)
    return text if len(text) <= 200 else text[:199] + "…"


def setting(value: Any, key: str = "") -> str:
    """A configuration value (discovery.config) in a line: a learning rate as the config
    writes it ("2e-4"), a list of names joined, anything else as `metric` or as text."""
    if isinstance(value, tuple | list):
        return ", ".join(setting(v) for v in value) or "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if key == "learning_rate":
        return named(value, key)
    if isinstance(value, int | float):
        return metric(value)
    text = visible(value)
    return text if len(text) <= 200 else text[:199] + "…"


def column_decimals(values: Iterable[Any], significant: int = 4) -> int | None:
    """The one precision of a table column: decimals enough for its largest magnitude to keep
    `significant` digits and its smallest 2, at most 6; 0 when every value is whole; None
    (scientific notation) when even the largest is under 0.001, or 10^15 and up."""
    magnitudes = [abs(v) for v in map(finite, values) if v is not None]
    if not magnitudes or all(m.is_integer() for m in magnitudes):
        return 0
    big = max(magnitudes)
    if big < 1e-3 or big >= 1e15:
        return None
    small = min((m for m in magnitudes if m), default=big)
    need = max(significant - 1 - math.floor(math.log10(big)), 1 - math.floor(math.log10(small)))
    return max(0, min(6, need))


@dataclass(frozen=True)
class Column:
    """How every value of one table column is written: its unit (discovery.metrics.unit) and
    its decimals (`column_decimals`; for a learning rate, its mantissa's; None for scientific
    notation). `spec` hands the same rule to the charts' readout in static/js/dashboard.js."""

    unit: str = ""
    decimals: int | None = None
    do_not_call_in_templates: ClassVar[bool] = True  # a template hands it to `written`

    @property
    def spec(self) -> dict[str, Any]:
        return {"unit": self.unit, "decimals": self.decimals}

    def __call__(self, value: Any) -> str:
        v = finite(value)
        if v is None or abs(v) >= 1e15:
            return metric(value)
        if self.unit == "s":
            return with_unit(v, self.unit)
        if self.unit == "lr":
            return _scientific(v, self.decimals or 0)
        if self.unit == "%":
            v *= 100
        text = _scientific(v, 3) if self.decimals is None else _fixed(v, self.decimals)
        return text + ("%" if self.unit == "%" else f" {self.unit}" if self.unit else "")


def column(values: Iterable[Any], unit: str = "") -> Column:
    """The format of every value of one table column, so they all read alike: the same
    decimals (`column_decimals`, on percentages for shares), a learning rate's mantissas all
    as long as the longest needs, durations and rates with their units. Anything that is not
    a finite number is written as `metric` writes it."""
    values = list(values)
    if unit == "s":
        return Column(unit)
    if unit == "lr":
        digits = max((_mantissa_decimals(v) for v in map(finite, values) if v), default=0)
        return Column(unit, digits)
    # Percentages read best to a tenth: 66.2%.
    scale, significant = (100.0, 3) if unit == "%" else (1.0, 4)
    return Column(unit, column_decimals((f * scale for f in map(finite, values) if f), significant))


def score_formats(details: Iterable[Any]) -> dict[tuple[str, str], Column]:
    """How a table's best scores read: one column format per score group (Ranking.group),
    from every score in it (`details`: RunDetails, or compare's lines, which hold one as `d`).
    Scores of different rules do not compare, and a loss should not lose digits to a margin
    ratio of 35."""
    scores: dict[tuple[str, str], list[Any]] = {}
    for x in details:
        d = getattr(x, "d", x)
        scores.setdefault(d.ranking.group, []).append(d.best_score)
    return {group: column(s, unit(group[0])) for group, s in scores.items()}


def pass_rate(passed: int, total: int, low: float, high: float) -> str:
    """An evaluation's cell: `36/44 · 82 % (68–90)`, the interval being the rate's 95 % one."""
    rate, interval = round(100 * passed / total), f"{round(100 * low)}–{round(100 * high)}"
    return f"{passed}/{total} · {rate} % ({interval})"


def duration(seconds: Any) -> str:
    """`25107.9` → "6h 58m 28s", `2.5` → "2.5s"; empty for anything that is not a finite
    number."""
    if type(seconds) not in (int, float):
        return ""
    try:
        if not math.isfinite(seconds) or seconds < 0:
            return ""
        if seconds < 59.95:  # a step's time: its tenths tell
            # Under a second, three digits: a job that took 0.2022 s reads "0.202s".
            return f"{metric(float(_rounded(seconds, '.1f' if seconds >= 1 else '.3g')))}s"
        total = int(_rounded(seconds, ".0f"))
    except OverflowError:
        return ""
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes}m {secs}s" if hours else f"{minutes}m {secs}s"


# Characters that hide or reorder the text around them: controls, format characters (bidi
# overrides and isolates, zero-width ones), line and paragraph separators, lone surrogates.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def visible(value: Any, keep: str = "") -> str:
    """A name as it is, with what would hide or reorder text spelled out: `a\\u202eb`, `a\\nb`."""
    if value is None:
        return ""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(
        c.encode("unicode_escape", "backslashreplace").decode("ascii")
        if unicodedata.category(c) in HIDDEN_CATEGORIES and c not in keep
        else c
        for c in text
    )


def visible_text(value: Any) -> str:
    """Prose (a description) like `visible`, its line breaks and tabs kept."""
    return visible(value, keep="\n\r\t")
