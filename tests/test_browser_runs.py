"""What users click on the run pages, in headless Chromium against a live server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sampledata import demo
from sampledata import runs as wb

from .conftest import KTO_RUN as KTO
from .conftest import RUNNING_RUN as RUNNING
from .conftest import SFT_RUN as SFT
from .conftest import age, started

# The live server runs in another thread, so tests' data must be committed.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ws(three_runs: Path) -> Path:
    return three_runs


def test_filtering_the_run_list_swaps_the_table_and_changes_the_url(page, live_server, ws):
    page.goto(f"{live_server.url}/runs/")
    page.evaluate("window.notReloaded = true")
    assert page.locator("#runs-table tbody tr").count() == 3
    page.select_option("select[name=type]", "sft")
    page.wait_for_url(re.compile(r"/runs/\?type=sft$"))
    page.wait_for_function("document.querySelectorAll('#runs-table tbody tr').length === 1")
    assert SFT in page.locator("#runs-table").inner_text()
    page.fill("#filter-q", "nothing-matches")
    page.wait_for_url(re.compile(r"q=nothing-matches"))
    page.wait_for_selector("text=No runs match")
    assert page.evaluate("window.notReloaded") is True
    # The pushed URL is shareable: opening it fresh shows the same filtered table.
    page.goto(f"{live_server.url}/runs/?type=sft")
    assert page.locator("#runs-table tbody tr").count() == 1


def test_sorting_by_a_column_header_pushes_the_sort_into_the_url(page, live_server, ws):
    page.goto(f"{live_server.url}/runs/")
    page.click("th >> text=Run")
    page.wait_for_url(re.compile(r"sort=run"))
    page.wait_for_function(
        f"document.querySelector('#runs-table tbody tr td a').innerText === '{SFT}'"
    )


def test_opening_a_run_highlights_the_best_row_and_names_its_rule(page, live_server, ws):
    page.goto(f"{live_server.url}/runs/")
    page.click(f"text={KTO}")
    page.wait_for_url(f"**/runs/rtx3090_kto/{KTO}/")
    best = page.locator("tr.best")
    assert best.count() == 1
    assert "best · margin/kl" in best.inner_text()
    color = best.locator("td").nth(1).evaluate("e => getComputedStyle(e).backgroundColor")
    plain = (
        page.locator("table.checkpoints tbody tr:not(.best) td")
        .nth(1)
        .evaluate("e => getComputedStyle(e).backgroundColor")
    )
    assert color != plain
    assert "rewards/margins ÷ kl" in page.locator("p.rule").inner_text()
    assert page.locator("figure.chart svg path[data-series]").count() >= 2


def test_reranking_from_the_page_keeps_a_shareable_url(page, live_server, ws):
    page.goto(f"{live_server.url}/runs/rtx3090_kto/{KTO}/")
    page.select_option("select[name=rank]", "loss")
    page.wait_for_url(re.compile(r"rank=loss"))
    assert "ranked by loss" in page.locator("p.rule").inner_text()
    assert "best · requested" in page.locator("tr.best").inner_text()


def test_opening_a_checkpoint_shows_its_metrics_files_and_path(page, live_server, ws):
    page.goto(f"{live_server.url}/runs/rtx3090_kto/{KTO}/")
    page.click("table.checkpoints >> text=checkpoint-50")
    page.wait_for_url(f"**/runs/rtx3090_kto/{KTO}/checkpoint-50/")
    assert page.locator("h1").inner_text().startswith("checkpoint-50")
    assert "adapter_model.safetensors" in page.content()
    assert page.locator("#ckpt-path").inner_text().endswith("checkpoints/checkpoint-50")
    page.click("a[rel=next]")
    page.wait_for_url("**/checkpoint-75/")


def test_a_running_runs_table_updates_without_a_reload_when_its_log_grows(page, live_server, ws):
    run = wb.output_dir(ws, "kto") / RUNNING
    page.goto(f"{live_server.url}/runs/rtx3090_kto/{RUNNING}/")
    page.evaluate("window.notReloaded = true")
    assert page.locator("text=checkpoint-60").count() == 0
    wb.write_log(
        run,
        [{"step": s, "loss": 0.05, "rewards/margins": 9.0, "kl": 1.0} for s in (45, 50, 55, 60)],
        (started(RUNNING).replace(minute=2)).strftime("%Y%m%d_%H%M%S"),
    )
    wb.add_checkpoint(run, 60, max_steps=100)
    page.wait_for_selector("table.checkpoints >> text=checkpoint-60", timeout=10_000)
    assert "best · margin/kl" in page.locator("tr.best").inner_text()
    assert "checkpoint-60" in page.locator("tr.best").inner_text()
    assert "step 60 / 100" in page.locator(".facts").inner_text()
    assert page.evaluate("window.notReloaded") is True


def test_the_overviews_training_now_panel_follows_a_growing_log(page, live_server, ws):
    run = wb.output_dir(ws, "kto") / RUNNING
    page.goto(f"{live_server.url}/")
    page.evaluate("window.notReloaded = true")
    panel = page.locator("#running-now")
    assert "step 40 / 100" in panel.inner_text()
    wb.write_log(
        run,
        [{"step": s, "loss": 0.05, "rewards/margins": 9.0, "kl": 1.0} for s in (45, 50, 55)],
        (started(RUNNING).replace(minute=2)).strftime("%Y%m%d_%H%M%S"),
    )
    page.wait_for_selector("#running-now >> text=step 55 / 100", timeout=10_000)
    assert page.evaluate("window.notReloaded") is True


def test_the_run_list_follows_a_training_run_but_not_while_boxes_are_ticked(page, live_server, ws):
    run = wb.output_dir(ws, "kto") / RUNNING
    stamp = started(RUNNING).replace(minute=2).strftime("%Y%m%d_%H%M%S")
    page.goto(f"{live_server.url}/runs/")
    page.evaluate("window.notReloaded = true")
    last_step = f"#runs-table tr:has(a[href$='/{RUNNING}/']) td.c-step .step"
    assert page.locator(last_step).inner_text().split() == ["40", "of", "100"]
    wb.write_log(run, [{"step": 45, "loss": 0.05, "rewards/margins": 9.0, "kl": 1.0}], stamp)
    page.wait_for_function(
        f'document.querySelector("{last_step}").innerText.startsWith("45")', timeout=10_000
    )
    page.get_by_label(f"compare rtx3090_kto/{KTO}").check()
    history = page.evaluate("history.length")
    wb.write_log(run, [{"step": 50, "loss": 0.05, "rewards/margins": 9.0, "kl": 1.0}], stamp)
    page.wait_for_timeout(4_500)  # longer than the refresh interval
    assert page.get_by_label(f"compare rtx3090_kto/{KTO}").is_checked()
    assert page.locator(last_step).inner_text().split()[0] == "45"
    assert page.evaluate("history.length") == history  # polls add no history entries
    assert page.evaluate("window.notReloaded") is True


def test_a_run_finishing_while_the_overview_is_open_moves_to_its_card_in_one_swap(
    any_page, live_server, ws, settings
):
    settings.TUNER_REFRESH_SECONDS = 1
    run = wb.output_dir(ws, "kto") / RUNNING
    any_page.goto(f"{live_server.url}/")
    any_page.evaluate("window.notReloaded = true")
    # After every refresh, what "Training now" and the run's card say, to catch any moment
    # where the two disagree.
    any_page.evaluate(
        """run => { window.states = [];
        document.body.addEventListener('htmx:afterSettle', () => {
            const now = document.querySelector('#running-now').textContent.includes(run);
            const row = [...document.querySelectorAll('.trainer-card tr')]
                .find(tr => tr.textContent.includes(run));
            window.states.push([now, row.querySelector('.status').textContent]);
        }); }""",
        RUNNING,
    )
    assert RUNNING in any_page.locator("#running-now").inner_text()
    any_page.wait_for_function("window.states.length >= 1", timeout=5_000)
    log = sorted((run / "logs").glob("training_2*.jsonl"))[-1]
    demo.finish_run(run, log, 100, 100, 2e-4, wb.BASE_MODELS[0])
    any_page.wait_for_selector("#running-now >> text=No run is training right now")
    row = any_page.locator(".trainer-card tr", has_text=RUNNING)
    assert row.locator(".status").inner_text() == "completed"
    states = any_page.evaluate("window.states")
    assert [True, "running"] in states and [False, "completed"] in states
    assert all(s in ([True, "running"], [False, "completed"]) for s in states), states
    assert any_page.evaluate("window.notReloaded") is True


def test_sorting_by_score_shows_each_rules_group_under_its_heading(any_page, live_server, ws):
    any_page.goto(f"{live_server.url}/runs/")
    if any_page.width >= 1024:
        any_page.locator("th.c-score a").click()
    else:  # run cards have no headers: the sort menu does it
        any_page.select_option("select[name=sort]", "best_score")
    any_page.wait_for_url(re.compile(r"sort=best_score"))
    any_page.wait_for_selector("tr.group")
    assert any_page.locator("select[name=sort]").input_value() == "best_score"
    headings = any_page.locator("tr.group").all_inner_texts()
    assert headings == ["Score: eval_loss, lower is better", "Score: margin/kl, higher is better"]
    for heading in any_page.locator("tr.group").all():
        box = heading.bounding_box()
        assert box["width"] > 0 and box["x"] + box["width"] <= any_page.width


def test_a_stopped_run_says_when_it_last_wrote(any_page, live_server, ws):
    stopped = wb.make_run(
        ws, "sft", started("20251105_100000"), max_steps=100, done=60, completed=False
    )
    age(stopped, 2 * 86400)
    any_page.goto(f"{live_server.url}/runs/rtx3090_sft/{stopped.name}/")
    note = any_page.locator(".status-note")
    assert "Last wrote 2\xa0days ago" in note.inner_text()
    assert "TUNER_RUNNING_WINDOW" in note.inner_text() and "did not finish" in note.inner_text()
    box = note.bounding_box()
    assert box["x"] + box["width"] <= any_page.width
