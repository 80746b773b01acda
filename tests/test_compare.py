"""Runs side by side: one metric's curves, a row per run, shareable URLs and their JSON twin."""

from __future__ import annotations

import json
import math
import re
from html import unescape
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from django.utils.html import escape

from sampledata import runs as wb

from .conftest import KTO_RUN as KTO
from .conftest import RUNNING_RUN as RUNNING
from .conftest import SFT_RUN as SFT
from .conftest import run_dir, started

pytestmark = pytest.mark.django_db

SFT_ID, KTO_ID, RUNNING_ID = f"rtx3090_sft/{SFT}", f"rtx3090_kto/{KTO}", f"rtx3090_kto/{RUNNING}"


@pytest.fixture
def ws(three_runs: Path) -> Path:
    return three_runs


def url(path: str, *runs: str, **params: str) -> str:
    return f"{path}?{urlencode([*(('run', r) for r in runs), *params.items()])}"


def get_json(client, address: str, status: int = 200):
    response = client.get(address)
    assert response.status_code == status, response.content[:500]
    return json.loads(response.content)


def test_two_runs_are_compared_on_the_metric_both_logged(client, ws):
    data = get_json(client, url("/api/compare/", KTO_ID, SFT_ID))
    assert data["metric"] == "loss"
    assert "rewards/margins" in data["metrics"] and "eval_loss" in data["metrics"]
    assert "epoch" not in data["metrics"]  # bookkeeping is no metric to compare
    kto, sft = data["runs"]
    assert (kto["trainer"], kto["run"], kto["url"]) == ("rtx3090_kto", KTO, f"/runs/{KTO_ID}/")
    assert kto["best_checkpoint"]["rule"] == "margin/kl" and sft["status"] == "completed"
    assert len(kto["steps"]) == len(kto["values"]) and kto["steps"][-1] == 100
    assert sft["steps"] == sorted(sft["steps"]) and all(isinstance(v, float) for v in sft["values"])


def test_a_metric_only_some_runs_logged_draws_those_runs(client, ws):
    data = get_json(client, url("/api/compare/", KTO_ID, SFT_ID, metric="kl"))
    kto, sft = data["runs"]
    assert kto["values"] and sft["steps"] == [] and sft["values"] == []
    html = client.get(url("/compare/", KTO_ID, SFT_ID, metric="kl")).content.decode()
    assert html.count("data-series=") == 1 and f'data-series="{KTO_ID}"' in html
    # The run without it stays in the legend, saying so.
    legend = html[html.index("<figcaption>") : html.index("</figcaption>")]
    assert SFT_ID in legend and "no kl logged" in legend


def test_non_finite_values_are_left_out_of_the_lines(client, ws):
    run = run_dir(ws, "sft", SFT)
    wb.write_log(run, ['{"step": 101, "loss": NaN}', '{"step": 102, "loss": Infinity}'], "20251102")
    data = get_json(client, url("/api/compare/", SFT_ID))
    steps, values = data["runs"][0]["steps"], data["runs"][0]["values"]
    assert 101 not in steps and 102 not in steps and all(math.isfinite(v) for v in values)


def test_the_page_draws_a_line_per_run_with_a_row_and_a_way_to_remove_it(client, ws):
    html = client.get(url("/compare/", RUNNING_ID, KTO_ID, SFT_ID)).content.decode()
    assert html.count("data-series=") == 3 and "<svg" in html
    assert f'href="/runs/{KTO_ID}/"' in html and "margin/kl" in html
    without_kto = url("/compare/", RUNNING_ID, SFT_ID, metric="loss")
    assert f'href="{without_kto}"'.replace("&", "&amp;") in html
    # Each row's swatch has the colour of its line.
    # legend, row and configuration column of the first run
    assert html.count('style="background: #2563eb"') == 3


def test_the_metric_select_swaps_the_body_and_the_same_url_renders_it_whole(client, ws):
    address = url("/compare/", KTO_ID, SFT_ID, metric="eval_loss")
    fragment = client.get(address, headers={"HX-Request": "true"}).content.decode()
    assert fragment.lstrip().startswith('<div id="compare-body"') and "<html" not in fragment
    assert 'hx-push-url="true"' in fragment and 'name="run"' in fragment
    page = client.get(address).content.decode()
    start = page.index('<div id="compare-body"')
    assert page[start : start + len(fragment.strip())] == fragment.strip()


def test_no_runs_is_a_page_that_says_how_to_choose_them(client, ws):
    assert "Tick runs in the" in client.get("/compare/").content.decode()
    assert get_json(client, "/api/compare/") == {
        "metric": None,
        "metrics": [],
        "format": {"unit": "", "decimals": 0},
        "runs": [],
        "config_diff": [],
        "config_same_count": 0,
    }


def test_the_twin_says_how_the_page_writes_its_values(client, ws):
    # The table and the chart's readout write a share as a percentage, to a tenth.
    data = get_json(client, url("/api/compare/", SFT_ID, metric="mean_token_accuracy"))
    assert data["format"] == {"unit": "%", "decimals": 1}
    html = client.get(url("/compare/", SFT_ID, metric="mean_token_accuracy")).content.decode()
    config = json.loads(unescape(re.search(r'data-chart="([^"]*)"', html)[1]))
    assert config["unit"] == "%" and config["series"][0]["format"] == data["format"]
    history = get_json(client, f"/api/runs/{SFT_ID}/metrics/")
    assert history["units"]["mean_token_accuracy"] == "%"
    assert history["units"]["learning_rate"] == "lr" and history["units"]["loss"] == ""


def test_the_page_offers_the_other_runs_to_add_grouped_by_trainer(client, ws):
    html = client.get(url("/compare/", KTO_ID)).content.decode()
    select = html[html.index('<form class="add-run"') :]
    select = select[: select.index("</form>")]
    assert f'value="{KTO_ID}"' in select  # the hidden field that keeps it
    assert f'<option value="{RUNNING_ID}">' in select and f'<option value="{SFT_ID}">' in select
    assert f'<option value="{KTO_ID}">' not in select
    assert select.index('label="rtx3090_kto"') < select.index('label="rtx3090_sft"')
    every_run = url("/compare/", KTO_ID, SFT_ID, RUNNING_ID)
    assert 'class="add-run"' not in client.get(every_run).content.decode()


def test_a_run_page_links_to_a_comparison_that_starts_with_it(client, ws):
    html = client.get(f"/runs/{KTO_ID}/").content.decode()
    assert f'href="/compare/?run={quote(KTO_ID, safe="")}"' in html


def test_a_run_given_twice_is_compared_once_and_empty_ones_not_at_all(client, ws):
    assert len(get_json(client, url("/api/compare/", SFT_ID, SFT_ID, ""))["runs"]) == 1


@pytest.mark.parametrize(
    ("query", "says"),
    [
        (url("", "nope"), "run must name a run in this workspace as <trainer>/<run>"),
        (url("", "rtx3090_sft/20990101_000000"), "'rtx3090_sft/20990101_000000' is not one"),
        (url("", "../../etc/passwd"), "is not one"),
        (url("", "rtx3090_sft/..%2f..%2fsecret"), "is not one"),
        (url("", SFT_ID, metric="nope"), "metric must be one of: epoch, eval_loss"),
        (url("", *[f"rtx3090_sft/2025110{i}_100000" for i in range(9)]), "at most 8 times"),
    ],
)
def test_bad_compare_parameters_are_a_400_that_says_what_is_accepted(client, ws, query, says):
    assert says in get_json(client, f"/api/compare/{query}", status=400)["error"]
    response = client.get(f"/compare/{query}")
    assert response.status_code == 400 and escape(says) in response.content.decode()


def test_the_run_list_has_a_box_per_run_for_the_compare_form(client, ws):
    html = client.get("/runs/").content.decode()
    assert '<form id="compare-form" method="get" action="/compare/">' in html
    assert html.count('form="compare-form"') == 4  # three boxes and the button
    assert f'value="{KTO_ID}"' in html


def test_removing_the_last_run_leads_to_an_empty_comparison_not_a_400(client, ws):
    html = client.get(url("/compare/", SFT_ID, metric="eval_loss")).content.decode()
    assert 'href="/compare/" hx-get="/compare/"' in html  # its "remove" link
    # A bookmarked address from before the fix still answers with the empty page.
    response = client.get("/compare/?metric=loss")
    assert response.status_code == 200 and "No runs chosen" in response.content.decode()
    assert get_json(client, "/api/compare/?metric=loss")["runs"] == []


def test_a_removed_runs_metric_is_kept_only_while_another_run_logged_it(client, ws):
    html = client.get(url("/compare/", KTO_ID, SFT_ID, metric="eval_loss")).content.decode()
    # Without the SFT run, nobody logged eval_loss: the link drops it rather than lead to a 400.
    assert f'href="{url("/compare/", KTO_ID)}"' in html
    assert f'href="{url("/compare/", SFT_ID, metric="eval_loss")}"'.replace("&", "&amp;") in html
    for link in re.findall(r'href="(/compare/\?[^"]+)"', html):
        assert client.get(link.replace("&amp;", "&")).status_code == 200


def test_one_smoothing_window_in_steps_is_stated_for_every_run(client, use_workspace):
    # Logged every 5 steps and every step: one window of 50 steps smooths both alike.
    coarse = wb.make_run(use_workspace, "sft", started("20251101_100000"), max_steps=1000)
    fine = wb.make_run(use_workspace, "kto", started("20251102_100000"), max_steps=800, log_every=1)
    ids = [f"rtx3090_sft/{coarse.name}", f"rtx3090_kto/{fine.name}"]
    html = client.get(url("/compare/", *ids)).content.decode()
    legend = html[html.index("<figcaption>") : html.index("</figcaption>")]
    assert legend.count("moving average over 50 steps") == 1
    assert html.count('class="smooth"') == 2
    config = json.loads(unescape(re.search(r'data-chart="([^"]+)"', html)[1]))
    assert config["window"] == 50 and config["source"] == url("/api/compare/", *ids, metric="loss")
    assert [s["smooth"] for s in config["series"]] == [True, True]
    bests = {
        r["trainer"] + "/" + r["run"]: r["best_checkpoint"]["step"]
        for r in get_json(client, url("/api/compare/", *ids))["runs"]
    }
    assert config["bests"] == bests
    assert "each run's best checkpoint" in legend and html.count('class="best-dot"') == 2
