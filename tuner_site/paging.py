"""Long lists a page at a time: a server's models, a run's checkpoints (pages and JSON alike)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

# 10,000 models made the servers' JSON 8.9 MB every 3 s; 5,000 checkpoints a run's 2 MB.
MODELS_PER_PAGE = 200
CHECKPOINTS_PER_PAGE = 200


def page_count(count: int, per_page: int) -> int:
    return max(1, -(-count // per_page))


def page_of(items: Sequence[T], number: int, per_page: int) -> Sequence[T]:
    """Page `number` (from 1) of `items`; empty past the last page."""
    start = (number - 1) * per_page
    return items[start : start + per_page]
