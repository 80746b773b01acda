"""Numbers and durations for people: one format for pages and the CLI."""

from __future__ import annotations

import math
import unicodedata
from typing import Any

from discovery.values import as_float


def metric(value: Any) -> str:
    """One format for every number people read, on pages and in the CLI: whole numbers and
    anything from 1,000 up with thousands separators and no decimals, four significant digits
    below that, scientific notation only for the very small and the very large; NaN and the
    infinities spelled out."""
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
        return f"{float(value):.3e}"
    if isinstance(value, int) or value.is_integer() or magnitude >= 999.5:
        return f"{round(value):,}"
    if value != 0 and magnitude < 1e-3:
        return f"{value:.3e}"
    return f"{value:.4g}"


def duration(seconds: Any) -> str:
    """`25107.9` → "6h 58m 28s"; empty for anything that is not a finite number."""
    if type(seconds) not in (int, float):
        return ""
    try:
        if not math.isfinite(seconds) or seconds < 0:
            return ""
        total = round(seconds)
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
