"""A run ranked by its sweeps' pass rates, as people use it at 1280 and 390 px: the best mark
and the sentence that sets it against the training-metric best, the rule switched from the
menu (the address bar says so, and the link opens the same), and the loss chart's pass rates
on their own right-hand axis."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from .eval_results import URL, evaluated, make_run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def run_ws(use_workspace: Path) -> Path:
    root = make_run(use_workspace)
    # The final model shares checkpoint-500's step.
    passes = {"checkpoint-200": (4, 4), "checkpoint-300": (2, 4), "checkpoint-500": (0, 4)}
    evaluated(root, "levels", passes | {"final_model": (3, 4)})
    # Another prompt set, on fewer checkpoints, under a long name: a choice, not the default.
    evaluated(root, LONG, {"checkpoint-100": (3, 3), "checkpoint-400": (1, 3)}, second=10)
    return root


LONG = "tool_calling_regression_suite_for_the_vault_agents_v2"


def test_the_pass_rate_ranks_switches_to_training_and_the_link_keeps_it(
    desktop_or_phone_page, live_server, run_ws
):
    page = desktop_or_phone_page
    page.goto(live_server.url + URL)
    best = page.locator("tr.best")
    assert best.locator("td").first.inner_text().startswith("checkpoint-200")
    # The rule is the badge's title (a phone shows "best" alone).
    assert best.locator(".best-badge").get_attribute("title") == "eval:levels"
    verdict = page.locator("[data-verdict]")
    assert verdict.is_visible()
    assert "checkpoint-300 (lowest eval_loss) 2/4" in verdict.inner_text()
    assert verdict.inner_text().endswith("overlap: not a clear win.")
    # The sentence, the menu and the page keep within the phone's width.
    assert verdict.evaluate("e => e.getBoundingClientRect().right") <= page.width
    rank = page.locator("select[name=rank]")
    assert rank.evaluate("e => e.getBoundingClientRect().right") <= page.width
    assert page.evaluate("document.scrollingElement.scrollWidth") <= page.width
    options = rank.locator("option").all_inner_texts()
    assert options[:4] == [
        "default rule (pass rate on levels)",
        "pass rate on levels",
        f"pass rate on {LONG}",
        "training metric (eval_loss)",
    ]

    page.evaluate("window.notReloaded = true")
    page.locator("select[name=rank]").select_option("training")
    page.wait_for_url(re.compile(r"rank=training"))
    page.wait_for_function("document.querySelector('tr.best .best-badge').title === 'eval_loss'")
    assert page.locator("tr.best td").first.inner_text().startswith("checkpoint-300")
    assert page.evaluate("window.notReloaded") is True  # swapped in, not a new page
    assert unquote(page.url.partition("?")[2]) == "rank=training"
    # Chosen by name, the training rule still says what the pass rate says.
    assert "checkpoint-200 passes 4/4" in page.locator("[data-verdict]").inner_text()

    # The link a teammate gets opens on the same rule, and back to the pass rate from there.
    page.goto(page.url)
    assert page.locator("select[name=rank]").input_value() == "training"
    assert page.locator("tr.best td").first.inner_text().startswith("checkpoint-300")
    page.locator("select[name=rank]").select_option("eval:levels")
    page.wait_for_url(re.compile(r"rank=eval%3Alevels|rank=eval:levels"))
    page.wait_for_function("document.querySelector('tr.best .best-badge').title === 'eval:levels'")


def test_the_loss_chart_shows_the_pass_rate_on_a_right_axis(
    desktop_or_phone_page, live_server, run_ws
):
    page = desktop_or_phone_page
    page.goto(live_server.url + URL)
    loss = page.locator("figure.chart.has-rates")
    assert loss.count() == 1
    assert loss.locator(".chart-title").inner_text() == "Loss"
    page.wait_for_selector("figure.chart.has-rates.is-interactive")
    keys = loss.locator(".rate-key")
    assert keys.count() == 2 and keys.first.inner_text().startswith("levels pass rate")
    for key in keys.all():  # a long prompt set's name wraps within the phone's width
        assert key.is_visible()
        assert key.evaluate("e => e.getBoundingClientRect().right") <= page.width
    # uPlot draws the step axis, the loss axis and the pass rate's 0–100 % axis on the right.
    assert loss.locator(".u-axis").count() == 3
    loss.locator(".u-over").scroll_into_view_if_needed()
    box = loss.locator(".u-over").bounding_box()
    assert box is not None and box["x"] + box["width"] <= page.width
    # Pointing near step 200 reads the pass rate there, passed of total.
    page.mouse.move(box["x"] + box["width"] * 0.39, box["y"] + box["height"] / 2)
    readout = loss.locator(".readout")
    page.wait_for_function(
        "e => e.textContent.includes('levels pass rate checkpoint-200 4/4 (100%)')",
        arg=readout.element_handle(),
    )
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2)
    page.wait_for_function(
        "e => e.textContent.includes('levels pass rate checkpoint-300 2/4 (50%)')",
        arg=readout.element_handle(),
    )
    # At the last step, the checkpoint and the final model beside it, each with its own.
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)
    page.wait_for_function(
        """e => e.textContent.includes('levels pass rate checkpoint-500 0/4 (0%)')
            && e.textContent.includes('levels pass rate final_model 3/4 (75%)')""",
        arg=readout.element_handle(),
    )
