"""Comparing runs as a user does: tick rows, press Compare, switch the metric, drop a run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import KTO_RUN as KTO
from .conftest import RUNNING_RUN as RUNNING
from .conftest import SFT_RUN as SFT

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ws(three_runs: Path) -> Path:
    return three_runs


def test_ticking_runs_and_pressing_compare_draws_them_together(page, live_server, ws):
    page.goto(f"{live_server.url}/runs/")
    page.get_by_label(f"compare rtx3090_sft/{SFT}").check()
    page.get_by_label(f"compare rtx3090_kto/{KTO}").check()
    page.get_by_role("button", name="Compare ticked runs").click()
    page.wait_for_url(re.compile(r"/compare/\?run=.*&run="))
    assert page.locator("figure.chart svg path[data-series]").count() == 2
    assert page.locator("table.compare tbody tr").count() == 2

    page.evaluate("window.notReloaded = true")
    page.select_option("select[name=metric]", "eval_loss")
    page.wait_for_url(re.compile(r"metric=eval_loss"))
    page.wait_for_function(
        "document.querySelectorAll('figure.chart svg path[data-series]').length === 1"
    )
    assert "Last eval_loss" in page.locator("table.compare thead").inner_text()

    page.locator("table.compare tbody tr", has_text=KTO).get_by_text("remove").click()
    page.wait_for_function("document.querySelectorAll('table.compare tbody tr').length === 1")
    assert KTO not in page.url and SFT in page.url and "metric=eval_loss" in page.url
    assert page.evaluate("window.notReloaded") is True


def test_a_compare_url_opened_by_a_teammate_shows_the_same_runs(page, live_server, ws):
    address = f"/compare/?run=rtx3090_kto/{RUNNING}&run=rtx3090_kto/{KTO}&metric=kl"
    page.goto(f"{live_server.url}{address}")
    rows = page.locator("table.compare tbody tr")
    assert rows.count() == 2 and RUNNING in rows.first.inner_text()
    assert page.locator("select[name=metric]").input_value() == "kl"


def test_from_a_run_page_a_user_starts_a_comparison_and_adds_a_run(page, live_server, ws):
    page.goto(f"{live_server.url}/runs/rtx3090_kto/{KTO}/")
    page.get_by_role("link", name="Compare with other runs").click()
    page.wait_for_url(re.compile(r"/compare/\?run=rtx3090_kto"))
    assert page.locator("figure.chart svg path[data-series]").count() == 1
    page.select_option("form.add-run select[name=run]", f"rtx3090_sft/{SFT}")
    page.get_by_role("button", name="Add").click()
    page.wait_for_function("document.querySelectorAll('table.compare tbody tr').length === 2")
    assert SFT in page.url and KTO in page.url
    assert page.locator("figure.chart svg path[data-series]").count() == 2


def test_removing_the_last_run_says_no_runs_are_chosen_and_what_to_do(any_page, live_server, ws):
    any_page.goto(f"{live_server.url}/compare/?run=rtx3090_sft/{SFT}&metric=eval_loss")
    any_page.evaluate("window.notReloaded = true")
    any_page.locator("table.compare tbody tr").get_by_text("remove").click()
    any_page.wait_for_selector("text=No runs chosen")
    assert any_page.url.endswith("/compare/")
    body = any_page.locator("#compare-body").inner_text()
    assert "Bad request" not in body and "Tick runs in the run list" in body
    # The run can be added back from the same page.
    any_page.select_option("form.add-run select[name=run]", f"rtx3090_sft/{SFT}")
    any_page.get_by_role("button", name="Add").click()
    any_page.wait_for_function("document.querySelectorAll('table.compare tbody tr').length === 1")
    assert any_page.evaluate("window.notReloaded") is True
    assert any_page.evaluate("[document.documentElement.scrollWidth, innerWidth]")[0] <= (
        any_page.width
    )
