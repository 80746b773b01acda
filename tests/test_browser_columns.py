"""The checkpoint table's column control as people use it, at 1280, 1024 and 390 px: tick a
metric and its column appears, the address bar says so, a reload or a shared link shows the
same, the live refresh and a new ranking keep it, and one click shows all or the key ones."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from sampledata import runs as wb

from .conftest import KTO_RUN as KTO
from .conftest import RUNNING_RUN as RUNNING
from .conftest import started

pytestmark = pytest.mark.django_db(transaction=True)

RUN = f"/runs/rtx3090_kto/{KTO}/"
KEY = ["rewards/margins", "kl", "loss"]


@pytest.fixture
def ws(three_runs: Path) -> Path:
    return three_runs


# Whether the checkpoint table has a column of this name (a long one may wrap after / or _).
HAS_COLUMN = """name => [...document.querySelectorAll('table.checkpoints thead th')]
    .some(th => th.innerText.replace(/\\s/g, '') === name)"""


def headers(page) -> list[str]:
    texts = page.locator("table.checkpoints thead th").all_inner_texts()
    # A long name may wrap after its "/" or "_": read it as one name.
    return [re.sub(r"\s+", "", t) for t in texts[4:]]


def query(page) -> str:
    return unquote(page.url.partition("?")[2])


def test_ticking_a_metric_shows_it_pushes_the_url_and_a_reload_keeps_it(any_page, live_server, ws):
    any_page.goto(live_server.url + RUN)
    any_page.evaluate("window.notReloaded = true")
    assert headers(any_page) == [*KEY, "rewards/chosen", "rewards/rejected"]
    menu = any_page.locator("#columns-menu")
    menu.locator("summary").click()
    menu.get_by_role("checkbox", name="logps/chosen").check()
    any_page.wait_for_url(re.compile(r"col=logps%2Fchosen"))
    any_page.wait_for_function(HAS_COLUMN, arg="logps/chosen")
    # The shareable URL: the ticked metrics in the table's order, without the form's fields.
    assert query(any_page) == "col=logps/chosen&col=rewards/chosen&col=rewards/rejected"
    assert headers(any_page) == [*KEY, "logps/chosen", "rewards/chosen", "rewards/rejected"]
    assert any_page.evaluate("window.notReloaded") is True  # swapped in, not a new page
    assert menu.evaluate("m => m.open")  # still open for the next tick
    menu.get_by_role("checkbox", name="rewards/chosen").uncheck()
    any_page.wait_for_function("!location.search.includes('rewards%2Fchosen')")
    any_page.wait_for_function(f"!({HAS_COLUMN})('rewards/chosen')")
    shown = [*KEY, "logps/chosen", "rewards/rejected"]
    assert headers(any_page) == shown
    # A reload, or a teammate opening the link, shows the same columns.
    any_page.reload()
    assert headers(any_page) == shown
    assert any_page.locator("#columns-menu").evaluate("m => !m.open")
    # Every column in one click, then the key ones only, then back.
    any_page.get_by_role("link", name=re.compile(r"^Show all")).click()
    any_page.wait_for_url(re.compile(r"col=all"))
    any_page.wait_for_function(
        "document.querySelectorAll('table.checkpoints thead th').length === 14"
    )
    any_page.get_by_role("link", name="Key columns only").click()
    any_page.wait_for_url(re.compile(r"\?col=$"))
    any_page.wait_for_function(
        "document.querySelectorAll('table.checkpoints thead th').length === 7"
    )
    assert headers(any_page) == KEY
    any_page.go_back()
    any_page.wait_for_url(re.compile(r"col=all"))
    assert len(headers(any_page)) == 10 and "<html" not in any_page.locator("body").inner_text()


def test_back_restores_the_whole_page_when_htmx_kept_no_copy(page, live_server, ws):
    # htmx keeps the last few pages to go back to; past them (or with its cache off, as here)
    # it asks the server, which must answer with the page, not the fragment.
    page.goto(live_server.url + RUN)
    page.evaluate("htmx.config.historyCacheSize = 0")
    page.get_by_role("link", name="Key columns only").click()
    page.wait_for_url(re.compile(r"\?col=$"))
    page.wait_for_function("document.querySelectorAll('table.checkpoints thead th').length === 7")
    page.go_back()
    page.wait_for_url(live_server.url + RUN)
    page.wait_for_function("document.querySelectorAll('table.checkpoints thead th').length === 9")
    assert page.locator("header.topbar").count() == 1 and page.locator("h1").count() == 1
    assert headers(page) == [*KEY, "rewards/chosen", "rewards/rejected"]


def test_a_new_ranking_keeps_the_chosen_columns(any_page, live_server, ws):
    any_page.goto(live_server.url + RUN + "?col=grad_norm")
    any_page.select_option("select[name=rank]", "loss")
    any_page.wait_for_url(re.compile(r"rank=loss"))
    any_page.wait_for_function(
        "document.querySelector('p.rule').innerText.includes('ranked by loss')"
    )
    assert query(any_page) == "rank=loss&col=grad_norm"
    assert headers(any_page) == ["loss", "grad_norm"]  # ranked by loss: its inputs, then picked


def test_the_live_refresh_keeps_the_columns_and_the_open_menu(any_page, live_server, ws, settings):
    settings.TUNER_REFRESH_SECONDS = 1
    run = wb.output_dir(ws, "kto") / RUNNING
    url = f"/runs/rtx3090_kto/{RUNNING}/?col=grad_norm"
    any_page.goto(live_server.url + url)
    any_page.evaluate("window.notReloaded = true")
    shown = headers(any_page)
    assert "grad_norm" in shown and "rewards/chosen" not in shown
    any_page.locator("#columns-menu summary").click()
    line = {"step": 60, "loss": 0.05, "rewards/margins": 9.0, "kl": 1.0, "grad_norm": 0.25}
    wb.write_log(run, [line], started(RUNNING).replace(minute=2).strftime("%Y%m%d_%H%M%S"))
    wb.add_checkpoint(run, 60, max_steps=100)
    any_page.wait_for_selector("table.checkpoints >> text=checkpoint-60", timeout=10_000)
    assert headers(any_page) == shown
    assert query(any_page) == "col=grad_norm"
    assert any_page.locator("#columns-menu").evaluate("m => m.open")
    assert any_page.evaluate("window.notReloaded") is True


def test_without_javascript_the_form_picks_the_columns(open_page, live_server, ws):
    page = open_page(1280, 900, java_script_enabled=False)
    page.goto(live_server.url + RUN)
    page.locator("#columns-menu summary").click()
    page.get_by_role("checkbox", name="train_loss").check()
    page.get_by_role("checkbox", name="rewards/chosen").uncheck()
    page.get_by_role("button", name="Show these columns").click()
    page.wait_for_url(re.compile(r"col=train_loss"))
    assert headers(page) == [*KEY, "rewards/rejected", "train_loss"]
