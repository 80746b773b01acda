"""Interactive charts as a user handles them, at 1280, 1024 and 390 px: read every series at the
pointer, drag to zoom, double-click to reset, log scale, and charts that survive htmx swaps."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import quote

import pytest

from discovery.runs import Workspace, list_runs
from sampledata import runs as wb
from tuner_site.formatting import Column

from .conftest import RUNNING_RUN as RUNNING
from .conftest import started

pytestmark = pytest.mark.django_db(transaction=True)


def _long_sft(root: Path):
    return next(
        r
        for r in list_runs(Workspace.at(root))
        if r.type == "sft" and r.status == "completed" and r.checkpoint_steps[-1] == 12_000
    )


def _chart(page, title: str):
    figure = page.locator("figure.chart", has=page.locator(".chart-title", has_text=title))
    page.wait_for_function(
        "f => f.classList.contains('is-interactive') && f.dataset.xRange",
        arg=figure.element_handle(),
    )
    return figure


def _over(figure):
    return figure.locator(".u-over").bounding_box()


def _drag(page, figure, start: float, end: float) -> None:
    """Drag across the plot from `start` to `end` (shares of its width), as a zoom is made."""
    box = _over(figure)
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * start, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * end, y, steps=5)
    page.mouse.up()


def _x_range(figure) -> list[int]:
    return [int(x) for x in figure.get_attribute("data-x-range").split(",")]


def test_the_readout_names_every_series_at_the_pointers_step(any_page, live_server, busy_demo):
    run = _long_sft(busy_demo)
    any_page.goto(f"{live_server.url}/runs/{run.id}/")
    figure = _chart(any_page, "Loss")
    figure.scroll_into_view_if_needed()
    box = _over(figure)
    any_page.mouse.move(box["x"] + box["width"] * 0.53, box["y"] + box["height"] * 0.5)
    readout = figure.locator(".readout")
    any_page.wait_for_function(
        "r => r.textContent.startsWith('step ')", arg=readout.element_handle()
    )
    text = readout.inner_text()
    step = int(re.match(r"step ([\d,]+)", text)[1].replace(",", ""))
    assert 5000 <= step <= 7000
    # The raw value at that step, its average over the stated window, and the sparse eval
    # loss's nearest logged value with the step it was logged at.
    series = json.loads(
        any_page.evaluate(f"fetch('/api/runs/{run.id}/metrics/').then(r => r.text())")
    )
    loss = series["series"]["loss"][series["steps"].index(step)]
    # Written as the checkpoint table's loss column writes it: the format the server sent.
    config = json.loads(figure.get_attribute("data-chart"))
    spec = next(s["format"] for s in config["series"] if s["name"] == "loss")
    assert f"loss {Column(**spec)(loss)}" in text and "(average " in text
    at = re.search(r"eval_loss [\d.]+( at step ([\d,]+))?", text)
    if step % 1000:  # between two evaluations: the nearest one, with its step
        assert at[2] and int(at[2].replace(",", "")) % 1000 == 0
    else:
        assert at and not at[1]
    any_page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] + 200)
    any_page.wait_for_function(
        "r => r.textContent.startsWith('Point at')", arg=readout.element_handle()
    )


def test_dragging_zooms_the_steps_and_a_double_click_resets(any_page, live_server, busy_demo):
    run = _long_sft(busy_demo)
    any_page.goto(f"{live_server.url}/runs/{run.id}/")
    figure = _chart(any_page, "Loss")
    figure.scroll_into_view_if_needed()
    full = _x_range(figure)
    _drag(any_page, figure, 0.25, 0.5)
    any_page.wait_for_function(
        f"f => f.dataset.xRange !== '{full[0]},{full[1]}'", arg=figure.element_handle()
    )
    lo, hi = _x_range(figure)
    span = full[1] - full[0]
    assert full[0] + span * 0.2 < lo < hi < full[0] + span * 0.55
    assert figure.locator(".reset-zoom").is_visible()
    box = _over(figure)
    any_page.mouse.dblclick(box["x"] + box["width"] * 0.4, box["y"] + box["height"] / 2)
    any_page.wait_for_function(
        f"f => f.dataset.xRange === '{full[0]},{full[1]}'", arg=figure.element_handle()
    )
    assert figure.locator(".reset-zoom").is_hidden()


def test_a_log_scale_is_offered_where_every_value_is_above_zero(any_page, live_server, busy_demo):
    kto = next(
        r for r in list_runs(Workspace.at(busy_demo)) if r.type == "kto" and r.status == "completed"
    )
    # A margin below 0, as early KTO steps log: a log scale cannot show it.
    wb.write_log(kto.path, [{"step": 2, "rewards/margins": -0.4, "kl": 0.3}], "29990101_000000")
    any_page.goto(f"{live_server.url}/runs/{kto.id}/")
    loss, margin = _chart(any_page, "Loss"), _chart(any_page, "Reward margin")
    toggle = loss.locator("input[name=log]")
    assert toggle.is_enabled() and loss.get_attribute("data-log") == "0"
    toggle.check()
    any_page.wait_for_function("f => f.dataset.log === '1'", arg=loss.element_handle())
    assert loss.locator("canvas").count() == 1  # redrawn, not stacked
    # The box says why it cannot be ticked rather than draw nonsense.
    assert margin.locator("input[name=log]").is_disabled()
    assert "above 0" in margin.locator(".chart-controls label").get_attribute("title")


def test_sparse_series_are_drawn_with_markers_and_dense_ones_smoothed(
    any_page, live_server, busy_demo
):
    run = _long_sft(busy_demo)
    any_page.goto(f"{live_server.url}/runs/{run.id}/")
    figure = _chart(any_page, "Loss")
    config = json.loads(figure.get_attribute("data-chart"))
    by_name = {s["name"]: s for s in config["series"]}
    assert by_name["eval_loss"]["sparse"] and not by_name["eval_loss"]["smooth"]
    assert by_name["loss"]["smooth"] and not by_name["loss"]["sparse"]
    caption = figure.locator("figcaption").inner_text()
    assert "eval_loss (12 points)" in caption and "moving average over 500 steps" in caption
    # The drawing under the interactive chart (and without JavaScript) has the same markers.
    assert figure.locator("svg path.markers").count() == 1


def test_a_live_runs_chart_keeps_its_zoom_across_refreshes(
    any_page, live_server, three_runs, settings
):
    settings.TUNER_REFRESH_SECONDS = 1
    run = wb.output_dir(three_runs, "kto") / RUNNING
    any_page.goto(f"{live_server.url}/runs/rtx3090_kto/{RUNNING}/")
    any_page.evaluate("window.notReloaded = true")
    figure = _chart(any_page, "Loss")
    figure.scroll_into_view_if_needed()
    _drag(any_page, figure, 0.3, 0.7)
    any_page.wait_for_function(
        "f => f.querySelector('.reset-zoom:not([hidden])')", arg=figure.element_handle()
    )
    zoomed = figure.get_attribute("data-x-range")
    wb.write_log(
        run,
        [{"step": s, "loss": 0.05, "rewards/margins": 9.0, "kl": 1.0} for s in (45, 50, 55, 60)],
        started(RUNNING).replace(minute=2).strftime("%Y%m%d_%H%M%S"),
    )
    any_page.wait_for_selector("text=step 60 / 100", timeout=10_000)
    fresh = _chart(any_page, "Loss")
    any_page.wait_for_function(
        "() => [...document.querySelectorAll('figure.chart')].every(f => !f.dataset.pending)"
    )
    assert fresh.get_attribute("data-x-range") == zoomed
    assert fresh.locator(".reset-zoom").is_visible()
    assert fresh.locator("canvas").count() == 1
    assert any_page.evaluate("window.notReloaded") is True


def test_a_comparison_states_one_window_marks_bests_and_lists_runs_without_the_metric(
    any_page, live_server, busy_demo
):
    runs = list_runs(Workspace.at(busy_demo))
    long = _long_sft(busy_demo)
    kto = next(r for r in runs if r.type == "kto" and r.status == "completed")
    mlx = next(r for r in runs if r.type == "mlx" and r.status == "completed")
    ids = [long.id, kto.id, mlx.id]
    query = "&".join(f"run={quote(i)}" for i in ids)
    any_page.goto(f"{live_server.url}/compare/?{query}&metric=eval_loss")
    figure = _chart(any_page, "eval_loss")
    caption = figure.locator("figcaption").inner_text()
    assert f"{kto.id} no eval_loss logged" in " ".join(caption.split())
    assert f"{mlx.id} no eval_loss logged" in " ".join(caption.split())
    assert "each run's best checkpoint" in caption
    any_page.goto(f"{live_server.url}/compare/?{query}&metric=loss")
    figure = _chart(any_page, "loss")
    caption = " ".join(figure.locator("figcaption").inner_text().split())
    assert len(re.findall(r"moving average over \d+ steps", caption)) == 1
    config = json.loads(figure.get_attribute("data-chart"))
    assert set(config["bests"]) == set(ids) and config["window"] > 1
    figure.scroll_into_view_if_needed()
    box = _over(figure)
    any_page.mouse.move(box["x"] + box["width"] * 0.05, box["y"] + box["height"] / 2)
    readout = figure.locator(".readout")
    any_page.wait_for_function(
        "r => r.textContent.startsWith('step ')", arg=readout.element_handle()
    )
    assert all(i in readout.inner_text() for i in ids)
