"""Long lists a page at a time: one rule for every list, its page and its JSON alike.

A page number past the last page is a bad query (a 400 that says the range), never an empty
list that looks like "nothing here"; an empty list has one, empty, page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from django.core.paginator import Page, Paginator
from django.http import HttpRequest

from tuner_site.params import BadQuery, int_param

T = TypeVar("T")

# 10,000 models made the servers' JSON 8.9 MB every 3 s; 5,000 checkpoints a run's 2 MB.
MODELS_PER_PAGE = 200
# /models/ rows (each with its sources, servers and pass rates): 30,000 took 20 s to draw.
MODEL_ROWS_PER_PAGE = 100
CHECKPOINTS_PER_PAGE = 200
CASES_PER_PAGE = 25


def page_count(count: int, per_page: int) -> int:
    return max(1, -(-count // per_page))


def window(number: int, per_page: int) -> slice:
    """Where page `number` (from 1) lies in a list."""
    start = (number - 1) * per_page
    return slice(start, start + per_page)


def check_page(number: int, count: int, per_page: int, name: str = "page") -> int:
    """`number`, if a list of `count` items has that page: else a bad query naming the range."""
    pages = page_count(count, per_page)
    if number > pages:
        raise BadQuery(f"{name} must be between 1 and {pages}, not {number}.")
    return number


def page_of(items: Sequence[T], number: int, per_page: int, name: str = "page") -> Page[T]:
    """Page `number` (from 1) of `items`, checked."""
    check_page(number, len(items), per_page, name)
    return Paginator(items, per_page).page(number)


def requested_page(
    request: HttpRequest, items: Sequence[T], per_page: int, name: str = "page"
) -> Page[T]:
    """The page of `items` the query asks for (`?page=`, or `name`), checked."""
    return page_of(items, int_param(request, name, 1), per_page, name)


def share_of(items: Sequence[T], number: int, per_page: int) -> Sequence[T]:
    """One list's part of a page that several lists share, its number already checked against
    the longest (a server page's model lists): empty past this list's end."""
    return items[window(number, per_page)]
