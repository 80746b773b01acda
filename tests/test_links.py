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


def test_a_score_is_written_among_the_scores_of_its_own_group_only():
    """Ranking.group (metric and direction) is the one "same score group" rule: the run list's
    headings and a score column's precision both use it (before, the column used the metric
    alone, so a loss ranked highest-first set the digits of one ranked lowest-first)."""
    from types import SimpleNamespace as NS

    from discovery.ranking import Ranking
    from tuner_site.run_listing import score_group
    from tuner_site.templatetags.tuner import score_among

    def run(order: str, score: float) -> NS:
        return NS(ranking=Ranking("requested", "loss", order, (score,), "c"), best_score=score)

    low, high = run("min", 0.5123), run("max", 1234.5)
    assert score_group(low) != score_group(high)  # type: ignore[arg-type]
    assert score_among(low, [low, high]) == "0.5123"  # type: ignore[arg-type]


def test_run_and_checkpoint_urls_are_what_reverse_gives_for_any_name():
    """Built from one reverse() per trainer (a command's JSON links every run once), they
    quote every name as reverse() does, under any script prefix."""
    from types import SimpleNamespace

    from django.urls import get_script_prefix, reverse, set_script_prefix

    from discovery import caches

    names = ["20250101_000000", "run 1", "a%b", "ü-run", "q?x#y", "~:@!$&'()*+,;=", "%00"]
    was = get_script_prefix()
    try:
        for prefix in ("/", "/sub path/", "/a%20b/"):
            set_script_prefix(prefix)
            caches.clear_all()
            for trainer in ("rtx3090_sft", "my runs%"):
                for name in names:
                    run = SimpleNamespace(trainer=SimpleNamespace(id=trainer), name=name)
                    assert links.run_url(run) == reverse(  # type: ignore[arg-type]
                        "tuner-run-detail", args=[trainer, name]
                    )
                    for checkpoint in ("checkpoint-50", "final model", name):
                        assert links.checkpoint_url(run, checkpoint) == reverse(  # type: ignore[arg-type]
                            "tuner-checkpoint-detail", args=[trainer, name, checkpoint]
                        )
    finally:
        set_script_prefix(was)
        caches.clear_all()
