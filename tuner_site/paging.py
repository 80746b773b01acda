"""Long lists a page at a time: a server's models, the model list, a run's checkpoints (pages
and JSON alike)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

# 10,000 models made the servers' JSON 8.9 MB every 3 s; 5,000 checkpoints a run's 2 MB.
MODELS_PER_PAGE = 200
# /models/ rows (each with its sources, servers and pass rates): 30,000 took 20 s to draw.
MODEL_ROWS_PER_PAGE = 100
CHECKPOINTS_PER_PAGE = 200


def page_count(count: int, per_page: int) -> int:
    return max(1, -(-count // per_page))


def window(number: int, per_page: int) -> slice:
    """Where page `number` (from 1) lies in a list."""
    start = (number - 1) * per_page
    return slice(start, start + per_page)


def page_of(items: Sequence[T], number: int, per_page: int) -> Sequence[T]:
    """Page `number` (from 1) of `items`; empty past the last page."""
    return items[window(number, per_page)]
