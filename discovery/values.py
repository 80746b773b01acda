"""Reading values out of JSON someone else wrote: every shape check and number rule in one place.

A number no float holds (a 400-digit integer) is missing, like a string where a number belongs.
"""

from __future__ import annotations

import math
from typing import Any

MAX_INT = 2**63
# No trainer or evaluator nests deeper than a few levels; encoders, templates and repr() recurse
# once per level, so a document nested deeper than this is not read at all.
MAX_DEPTH = 100


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


def as_whole(value: Any) -> int | None:
    """A count written as an integer or as an integral float (PEFT and LLaMA-Factory write
    `lora_alpha: 32.0`), within 64 bits; None for anything else."""
    if type(value) is float and value.is_integer() and -MAX_INT <= value < MAX_INT:
        return int(value)
    return as_int(value)


def as_float(value: Any) -> float | None:
    """Any number a float holds, infinities and NaN included; None for anything else."""
    kind = type(value)
    if kind is float:  # most values, on every log line: no conversion
        return value
    if kind is not int:
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def finite(value: Any) -> float | None:
    """A number any float holds and any chart can draw, else None."""
    v = as_float(value)
    return v if v is not None and math.isfinite(v) else None


def fraction(value: Any) -> float | None:
    """A share between 0 and 1 (a pass rate), else None."""
    v = finite(value)
    return v if v is not None and 0.0 <= v <= 1.0 else None


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether lists and objects nest more than `limit` levels; found without recursion."""
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False
