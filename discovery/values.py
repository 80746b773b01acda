"""Reading values out of JSON someone else wrote: every shape check and number rule in one place.

A number no float holds (a 400-digit integer) is missing, like a string where a number belongs.
"""

from __future__ import annotations

import math
from typing import Any

MAX_INT = 2**63


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str | None:
    """A non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def as_int(value: Any) -> int | None:
    """An integer within 64 bits (not a bool), else None."""
    return value if type(value) is int and -MAX_INT <= value < MAX_INT else None


def as_float(value: Any) -> float | None:
    """Any number a float holds, infinities and NaN included; None for anything else."""
    if type(value) not in (int, float):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def finite(value: Any) -> float | None:
    """A number any float holds and any chart can draw, else None."""
    v = as_float(value)
    return v if v is not None and math.isfinite(v) else None
