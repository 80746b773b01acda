"""Every main page at 1280, 1024 and 390 px (a phone): nothing scrolls the page sideways,
tables fit or say they scroll, runs become cards on a phone, chart labels stay readable."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from discovery.runs import Workspace, list_runs
from sampledata import runs as wb

from .conftest import age

pytestmark = pytest.mark.django_db(transaction=True)

# Elements that cut their content off without saying so: anything that clips or scrolls
# sideways, except a table's own scroll box (which names the columns out of view).
HIDDEN_OVERFLOW = """() => [...document.querySelectorAll('main *')].filter(e => {
    const x = getComputedStyle(e).overflowX;
    return x !== 'visible' && e.scrollWidth > e.clientWidth + 1
        && !e.classList.contains('table-wrap') && !e.closest('.table-wrap')
        && !e.closest('.uplot');
}).map(e => e.tagName + '.' + e.className)"""


def main_pages(root: Path) -> list[str]:
    runs = list_runs(Workspace.at(root))
    kto = next(r for r in runs if r.type == "kto" and r.status == "completed")
    sft = next(r for r in runs if r.type == "sft" and r.status == "completed")
    mlx = next(r for r in runs if r.type == "mlx")
    return [
        "/",
        "/runs/",
        f"/runs/{kto.id}/",
        f"/runs/{kto.id}/checkpoint-{kto.checkpoint_steps[0]}/",
        f"/runs/{mlx.id}/",
        f"/compare/?run={quote(kto.id)}&run={quote(sft.id)}&run={quote(mlx.id)}",
        "/backends/",
        "/prompt-sets/",
        "/prompt-sets/tool_prompts/",
        "/prompt-sets/behavior_prompts_archived_20251202/",
        "/evaluations/",
        "/evaluations/full_coverage/",
        "/evaluations/tool_prompts_sft/",
    ]


def test_no_main_page_scrolls_sideways_or_cuts_content_off(any_page, live_server, busy_demo):
    for path in main_pages(busy_demo):
        response = any_page.goto(live_server.url + path)
        assert response.status == 200, path
        any_page.wait_for_load_state("networkidle")
        width = any_page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
        assert width[0] <= width[1], (path, width)
        assert any_page.evaluate(HIDDEN_OVERFLOW) == [], path


def test_the_nav_wraps_on_a_phone_with_every_link_on_screen(any_page, live_server, busy_demo):
    any_page.goto(live_server.url + "/")
    links = any_page.locator(".topbar a").all()
    assert len(links) == 9  # the brand, seven pages and Admin
    for link in links:
        box = link.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= any_page.width, link.inner_text()


def test_the_run_list_shows_every_column_from_1024_and_cards_on_a_phone(
    any_page, live_server, busy_demo
):
    any_page.goto(live_server.url + "/runs/")
    wrap = any_page.locator("#runs-table .table-wrap")
    rows = any_page.locator("table.runs tbody tr")
    assert rows.count() >= 9
    if any_page.width >= 1024:
        assert wrap.evaluate("w => w.scrollWidth <= w.clientWidth")
        headers = any_page.locator("table.runs thead th").all_inner_texts()
        assert [h.split(" ")[0] for h in headers[1:]] == [
            "Run",
            "Status",
            "Started",
            "Base",
            "Checkpoints",
            "Step",
            "Best",
            "Score",
        ]
        # The full base model, not cut to what no longer tells runs apart.
        long = any_page.locator("td.c-model", has_text="Qwen3-VL-4B-Instruct-unsloth-bnb-4bit")
        assert long.count() == 2 and long.first.evaluate("e => e.scrollWidth <= e.clientWidth")
    else:
        assert any_page.locator("table.runs thead").is_hidden()
        card = rows.filter(has_text="4,560").first
        for cell in ("c-run", "c-status", "c-step", "c-best", "c-score"):
            box = card.locator(f"td.{cell}").bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= any_page.width, cell
        assert card.locator("td.c-started").is_hidden() and card.locator("td.c-model").is_hidden()
        text = card.inner_text()
        assert "stopped" in text and "step 4,560 of 12,000" in " ".join(text.split())


def test_the_overview_becomes_cards_in_narrow_boxes(any_page, live_server, busy_demo):
    any_page.goto(live_server.url + "/")
    card = any_page.locator("section.trainer-card", has_text="rtx3090_sft")
    row = card.locator("tbody tr").first
    for cell in ("c-run", "c-status", "c-step", "c-best", "c-score"):
        box = row.locator(f"td.{cell}").bounding_box()
        inside = card.bounding_box()
        assert box["x"] + box["width"] <= inside["x"] + inside["width"], cell
    if any_page.width == 390:
        # A card: the status sits on the run's line, the best and score on their own.
        run, best = row.locator("td.c-run").bounding_box(), row.locator("td.c-best").bounding_box()
        assert best["y"] > run["y"] + run["height"] - 1


@pytest.mark.parametrize("run", [2, 4], ids=["kto", "mlx"])
def test_a_run_pages_default_columns_fit_from_1024_and_say_what_scrolls_on_a_phone(
    any_page, live_server, busy_demo, run
):
    url = main_pages(busy_demo)[run]
    any_page.goto(live_server.url + url)
    wrap = any_page.locator("table.checkpoints").locator("xpath=..")
    right = wrap.bounding_box()["x"] + wrap.bounding_box()["width"]
    for name in ("Checkpoint", "Step", "Score"):
        th = any_page.locator("table.checkpoints thead th", has_text=name).first
        box = th.bounding_box()
        assert box["x"] + box["width"] <= right + 1, name
    best = any_page.locator("tr.best .best-badge")
    assert best.is_visible() and best.bounding_box()["x"] + 10 < right
    hint = any_page.locator("#checkpoints .overflow-hint.shown")
    overflows = wrap.evaluate("w => w.scrollWidth > w.clientWidth")
    if any_page.width >= 1024:
        # The key columns and the method's telling ones: every one in view, no hint.
        assert not overflows
        assert "more-right" not in (wrap.get_attribute("class") or "") and hint.count() == 0
    elif overflows:
        assert "to the right" in hint.inner_text()


def test_every_column_of_a_wide_run_says_what_scrolls(any_page, live_server, busy_demo):
    # A GRPO run of recent TRL logs thirty metrics: all of them do not fit even at 1280. The
    # page says how many are out of view and which way, and the shadow follows the scroll.
    run = wb.output_dir(busy_demo, "grpo") / "20251101_100000"
    names = [f"rewards/reward_function_{i}/mean" for i in range(24)]
    lines = [
        {"step": s, "loss": 0.1, "reward": 1.0, **dict.fromkeys(names, 0.5 + s)} for s in (5, 10)
    ]
    wb.write_log(run, lines, "20251101_100100")
    wb.add_checkpoint(run, 10, max_steps=10)
    age(run, 7200)
    any_page.goto(f"{live_server.url}/runs/rtx3090_grpo/{run.name}/?col=all")
    wrap = any_page.locator("table.checkpoints").locator("xpath=..")
    hint = any_page.locator(".overflow-hint.shown")
    assert "more column" in hint.inner_text() and "to the right" in hint.inner_text()
    assert "more-right" in wrap.get_attribute("class")
    wrap.evaluate("w => { w.scrollLeft = w.scrollWidth }")
    any_page.wait_for_function(
        "document.querySelector('.overflow-hint').innerText.includes('left')"
    )
    assert "more-left" in wrap.get_attribute("class")


def test_chart_labels_stay_readable_without_javascript(open_page, live_server, busy_demo):
    kto = main_pages(busy_demo)[2]
    for width, height in ((390, 844), (1280, 900)):
        page = open_page(width, height, java_script_enabled=False)
        page.goto(live_server.url + kto)
        labels = page.locator(".chart .y-ticks span, .chart .x-ticks span, .chart .x-title")
        assert labels.count() > 10
        sizes = labels.evaluate_all(
            "ls => ls.map(l => parseFloat(getComputedStyle(l).fontSize) * "
            "(l.getBoundingClientRect().height / l.offsetHeight || 1))"
        )
        assert min(sizes) >= 10, (width, sizes)
        assert page.locator(".chart .y-title").first.inner_text() == "loss"


def test_interactive_charts_draw_at_the_boxes_size_so_their_text_is_not_shrunk(
    any_page, live_server, busy_demo
):
    kto = main_pages(busy_demo)[2]
    any_page.goto(live_server.url + kto)
    any_page.wait_for_selector("figure.chart.is-interactive canvas")
    canvases = any_page.locator("figure.chart canvas")
    for i in range(canvases.count()):
        css, pixels = canvases.nth(i).evaluate(
            "c => [c.getBoundingClientRect().width * devicePixelRatio, c.width]"
        )
        assert abs(css - pixels) <= 2
        box = canvases.nth(i).bounding_box()
        assert box["x"] + box["width"] <= any_page.width
