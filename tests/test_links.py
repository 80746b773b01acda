"""One builder for a page's shareable URL (tuner_site/links.py): its rules, and no template
that writes a query by hand beside it."""

from __future__ import annotations

import re

from tuner_site import links

from .conftest import REPO


def test_a_query_leaves_out_empty_fields_and_the_first_page_and_repeats_lists():
    assert links.query({"trainer": "a b", "q": "", "status": None, "page": 1}) == "?trainer=a+b"
    assert links.query({"page": 2, "models_page": "1"}) == "?page=2"
    assert links.query([("run", ["x/1", "y/2"]), ("metric", "loss")]) == (
        "?run=x%2F1&run=y%2F2&metric=loss"
    )
    assert links.query([("col", [""])]) == "?col="  # key columns only: an empty value says so
    assert links.query({}) == ""


def test_a_change_other_than_the_page_goes_back_to_the_first_page():
    current = {"sort": "run", "page": "3"}
    assert links.changed(current, page=4) == "?sort=run&page=4"
    assert links.changed(current, sort="-run") == "?sort=-run"
    assert links.changed(current, sort=None) == "?"


def test_templates_build_queries_with_the_one_builder():
    """`{% url 'x' %}?name={{ v }}` by hand drifts from what views push (empty fields, the
    first page, encoding); templates use {% page_url %} or {% query %}."""
    by_hand = re.compile(r'%\}\?[a-z_]+=|"\?[a-z_]+=\{\{|&amp;[a-z_]+=\{\{')
    found = [
        f"{path.relative_to(REPO)}:{n}"
        for path in sorted((REPO / "templates").rglob("*.html"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if by_hand.search(line)
    ]
    assert found == []
