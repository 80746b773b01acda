"""The page writes numbers by the server's rules: static/js/dashboard.js's formatter and moving
average run in Chromium on tests/number_table.py, the table tests/test_formatting.py checks the
server against; and a chart's readout reads a value as the table beside it does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tuner_site.charts import moving_average

from .conftest import SFT_RUN as SFT
from .number_table import AVERAGES, COLUMNS, METRIC, TICKS

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def numbers(page, live_server, three_runs: Path):
    """The page's number functions, once dashboard.js has loaded."""
    page.goto(f"{live_server.url}/runs/")
    page.wait_for_function("window.tunerNumbers !== undefined")
    return page


def test_the_pages_formatter_follows_the_servers_table(numbers):
    written = numbers.evaluate(
        """([metric, columns, ticks]) => [
            metric.map(([v]) => tunerNumbers.metric(v)),
            columns.map(([unit, decimals, v]) => tunerNumbers.column({unit, decimals})(v)),
            ticks.map(([v, unit]) => tunerNumbers.tick(v, unit)),
        ]""",
        [METRIC, COLUMNS, TICKS],
    )
    assert written[0] == [shown for _, shown in METRIC]
    assert written[1] == [shown for *_, shown in COLUMNS]
    assert written[2] == [shown for *_, shown in TICKS]


def test_the_pages_moving_average_is_the_servers(numbers):
    averaged = numbers.evaluate(
        "cases => cases.map(([s, v, w]) => tunerNumbers.movingAverage(s, v, w))", AVERAGES
    )
    assert averaged == [moving_average(s, v, w) for s, v, w in AVERAGES]


def _hover_last_point(page, figure, at: float = 1.0) -> str:
    """The readout with the pointer at `at` (a share of the plot's width; 1: the last point)."""
    figure.scroll_into_view_if_needed()
    page.wait_for_function(
        "f => f.classList.contains('is-interactive')", arg=figure.element_handle()
    )
    box = figure.locator(".u-over").bounding_box()
    page.mouse.move(box["x"] + (box["width"] - 1) * at, box["y"] + box["height"] / 2)
    readout = figure.locator(".readout")
    page.wait_for_function("r => r.textContent.startsWith('step ')", arg=readout.element_handle())
    return readout.inner_text()


def test_a_share_reads_alike_in_compares_table_and_on_hover(any_page, live_server, three_runs):
    run = f"rtx3090_sft/{SFT}"
    any_page.goto(f"{live_server.url}/compare/?run={run}&metric=mean_token_accuracy")
    last = any_page.locator("table.compare tbody tr td.num").nth(2).inner_text()
    assert re.fullmatch(r"\d\d\.\d%", last), last
    text = _hover_last_point(any_page, any_page.locator("figure.chart"))
    assert f"{run} {last}" in text, text
    ticks = any_page.locator("figure.chart .u-axis").last.inner_text()
    assert "%" in ticks or not ticks  # uPlot draws tick labels on its canvas


def test_a_learning_rate_reads_alike_in_compares_table_and_on_hover(page, live_server, three_runs):
    run = f"rtx3090_sft/{SFT}"
    page.goto(f"{live_server.url}/compare/?run={run}&metric=learning_rate")
    figures = page.locator("table.compare tbody tr td.num").all_inner_texts()[2:5]
    # Written as configs write a learning rate (1.9e-4), not 1.900e-4 nor 0.00019.
    assert all(re.fullmatch(r"0|\d(\.\d{0,2}[1-9])?e-\d", f) for f in figures), figures
    assert figures[2] != "0"
    # The rate decays from its first logged value, the highest: the same text on hover.
    text = _hover_last_point(page, page.locator("figure.chart"), at=0.0)
    assert f"{run} {figures[2]}" in text, text


def test_a_run_pages_readout_writes_a_checkpoints_value_as_its_table(page, live_server, three_runs):
    page.goto(f"{live_server.url}/runs/rtx3090_sft/{SFT}/?rank=mean_token_accuracy")
    figure = page.locator(
        "figure.chart", has=page.locator(".chart-title", has_text="mean_token_accuracy")
    )
    text = _hover_last_point(page, figure)
    # The last checkpoint is at the last step: its cell and the readout say the same.
    row = page.locator("table.checkpoints tbody tr", has_text="checkpoint-100").first
    cell = row.locator("td.score").inner_text()
    assert re.fullmatch(r"\d\d\.\d%", cell), cell
    assert f"mean_token_accuracy {cell}" in text, text
