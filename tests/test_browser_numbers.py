"""Numbers as people see them at 1280, 1024 and 390 px: unscored checkpoints explained beside
the rule, values beside their labels on a checkpoint page, units shown, and the same count of
checkpoints on /runs/ and on the run page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sampledata import runs as wb

from .conftest import KTO_RUN as KTO
from .conftest import age, started

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ws(three_runs: Path) -> Path:
    # An SFT run saved every 25 steps whose first evaluation is at step 100.
    run = wb.make_run(
        three_runs, "sft", started("20251102_100000"), max_steps=125, save_every=25, eval_every=100
    )
    age(run, 7200)
    return three_runs


def on_screen(page, locator) -> bool:
    box = locator.bounding_box()
    return box is not None and box["x"] >= 0 and box["x"] + box["width"] <= page.width + 1


def test_unscored_checkpoints_are_counted_beside_the_rule(any_page, live_server, ws):
    any_page.goto(f"{live_server.url}/runs/rtx3090_sft/20251102_100000/")
    note = any_page.locator("p.rule .unscored")
    assert note.inner_text() == (
        "5 of 6 checkpoints have no eval_loss logged at their own step (evaluations ran only "
        "at step 100, checkpoints every 25), so they have no score."
    )
    assert on_screen(any_page, note)
    # The rows it speaks of show no score.
    scores = any_page.locator("table.checkpoints tbody td.score").all_inner_texts()
    assert scores.count("—") == 5


def test_a_checkpoints_values_sit_beside_their_labels(any_page, live_server, ws):
    any_page.goto(f"{live_server.url}/runs/rtx3090_kto/{KTO}/final_model/")
    for name in ("loss", "train_runtime", "learning_rate"):
        row = any_page.locator(
            "table.kv tr", has=any_page.locator("th", has_text=re.compile(f"^{name}$"))
        )
        label, value = row.locator("th").bounding_box(), row.locator("td").bounding_box()
        # The value's box starts right after its label's, not a screen's width away.
        assert value["x"] - (label["x"] + label["width"]) < 5, name
        assert value["x"] - label["x"] < 300, name
        assert on_screen(any_page, row.locator("td")), name
    runtime = any_page.locator("table.kv tr", has=any_page.locator("th", has_text="train_runtime"))
    assert runtime.locator("td").inner_text() == "50m 0s"


def test_units_are_shown_where_the_numbers_are(any_page, live_server, ws):
    any_page.goto(f"{live_server.url}/runs/rtx3090_kto/{KTO}/")
    facts = any_page.locator(".facts").inner_text()
    assert re.search(r"Learning rate\s+2e-4", facts), facts
    assert re.search(r"Training time\s+50m 0s", facts), facts
    any_page.goto(f"{live_server.url}/runs/rtx3090_kto/{KTO}/checkpoint-25/")
    lr = any_page.locator("table.kv tr", has=any_page.locator("th", has_text="learning_rate"))
    assert re.fullmatch(r"\d\.\d+e-\d", lr.locator("td").inner_text())


def test_runs_and_the_run_page_count_checkpoints_alike(any_page, live_server, ws):
    any_page.goto(f"{live_server.url}/runs/")
    row = any_page.locator("#runs-table tbody tr", has=any_page.locator(f"a[href$='/{KTO}/']"))
    listed = " ".join(row.locator("td.c-ckpts").inner_text().split())
    any_page.goto(f"{live_server.url}/runs/rtx3090_kto/{KTO}/")
    on_disk = any_page.locator(".facts div", has=any_page.locator("dt", has_text="On disk"))
    said = " ".join(on_disk.locator("dd").inner_text().split())
    if any_page.width >= 1024:
        assert listed == "4 + final"
        assert said.endswith("in 4 checkpoints + final")
    else:  # a run card has no checkpoint count; the run page says it the same way
        assert said.endswith("in 4 checkpoints + final")
