"""The first rule tier on a run's page and JSON: checkpoints ranked by the pass rate their
sweeps found on a prompt set (`eval:<prompt set>`), the training-metric best beside it, the
sentence setting one against the other, the rule switched and shared by URL, and the pass rate
on the loss chart. Results are the Evaluator's own files, linked to checkpoints as a sweep
links them (an evaluation job of a sweep, per checkpoint)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .eval_results import API, URL, evaluated, make_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def run_ws(use_workspace: Path) -> Path:
    return make_run(use_workspace)


def test_the_run_really_has_checkpoint_300_lowest_by_eval_loss(client, run_ws):
    rank = client.get(API).json()["rank"]
    assert (rank["rule"], rank["training_best"], rank["verdict"]) == (
        "eval_loss",
        "checkpoint-300",
        None,
    )
    assert client.get(API).json()["best_checkpoint"]["name"] == "checkpoint-300"


def test_a_pass_rate_ranks_first_and_says_the_rules_disagree_within_overlapping_intervals(
    client, run_ws
):
    evaluated(run_ws, "levels", {"checkpoint-200": (4, 4), "checkpoint-300": (2, 4)})
    body = client.get(API).json()
    rank = body["rank"]
    assert (rank["rule"], rank["metric"], rank["order"]) == ("eval:levels", "eval:levels", "max")
    assert body["best_checkpoint"] == body["best_checkpoint"] | {
        "name": "checkpoint-200",
        "rule": "eval:levels",
        "score": 1.0,
    }
    assert rank["training_best"] == "checkpoint-300"
    assert rank["prompt_sets"] == ["levels"]
    assert rank["verdict"] == (
        "The two rules disagree: checkpoint-200 passes 4/4 on levels, checkpoint-300 "
        "(lowest eval_loss) 2/4; the 95 % intervals 51–100 % and 15–85 % overlap: "
        "not a clear win."
    )
    # The results are files the Evaluator's reader takes: their pages show them.
    top = next(c for c in body["checkpoints"] if c["name"] == "checkpoint-200")["evaluations"]
    shown = client.get(top[0]["url"])
    assert shown.status_code == 200 and "4/4" in shown.content.decode()
    scores = {c["name"]: (c["score"], c["best"]) for c in body["checkpoints"]}
    assert scores["checkpoint-200"] == (1.0, True)
    assert scores["checkpoint-300"] == (0.5, False)
    assert scores["checkpoint-100"] == (None, False)
    assert "ranked by the pass rate on levels, highest wins" in rank["how"]
    assert (
        body["unscored_note"]
        == "4 of 6 checkpoints have no result on levels, so they have no score."
    )
    page = client.get(URL).content.decode()
    assert (
        "Best: <a" in page
        and "checkpoint-200</strong></a>, ranked by the pass rate on levels" in page
    )
    assert "not a clear win." in page and "data-verdict" in page
    assert '<option value="eval:levels" data-no-order >pass rate on levels</option>' in page
    assert "training metric (eval_loss)</option>" in page


def test_a_clear_win_where_the_intervals_do_not_overlap(client, run_ws):
    evaluated(run_ws, "levels", {"checkpoint-200": (40, 40), "checkpoint-300": (10, 40)})
    rank = client.get(API).json()["rank"]
    assert rank["verdict"] == (
        "The two rules disagree: checkpoint-200 passes 40/40 on levels, checkpoint-300 "
        "(lowest eval_loss) 10/40; the 95 % intervals 91–100 % and 14–40 % do not overlap: "
        "a clear win."
    )


def test_agreeing_rules_say_so_briefly(client, run_ws):
    evaluated(run_ws, "levels", {"checkpoint-200": (1, 4), "checkpoint-300": (3, 4)})
    rank = client.get(API).json()["rank"]
    assert (rank["rule"], rank["training_best"]) == ("eval:levels", "checkpoint-300")
    assert rank["verdict"] == (
        "The two rules agree: checkpoint-300 passes 3/4 on levels and is also the lowest eval_loss."
    )


def test_one_evaluated_checkpoint_does_not_rank(client, run_ws):
    evaluated(run_ws, "levels", {"checkpoint-200": (4, 4)})
    body = client.get(API).json()
    assert (body["rank"]["rule"], body["rank"]["training_best"]) == ("eval_loss", "checkpoint-300")
    assert body["rank"]["verdict"] is None and body["rank"]["prompt_sets"] == []
    refused = client.get(API, {"rank": "eval:levels"})
    assert refused.status_code == 400
    assert "at least two of the run's checkpoints; this run's: none yet" in refused.json()["error"]


def test_the_rule_switches_by_url_and_the_training_rules_stay_choosable(client, run_ws):
    evaluated(run_ws, "levels", {"checkpoint-200": (4, 4), "checkpoint-300": (2, 4)})
    # A second prompt set on more checkpoints, evaluated later: the default.
    evaluated(
        run_ws,
        "tools",
        {"checkpoint-100": (3, 5), "checkpoint-400": (5, 5), "checkpoint-500": (1, 5)},
        second=10,
    )
    rank = client.get(API).json()["rank"]
    assert (rank["rule"], rank["prompt_sets"]) == ("eval:tools", ["tools", "levels"])
    assert "the prompt set the most checkpoints have results on (3)" in rank["how"]
    assert client.get(API).json()["best_checkpoint"]["name"] == "checkpoint-400"
    # checkpoint-300 has no result on tools: the sentence says they cannot be compared.
    assert "checkpoint-300 (lowest eval_loss) has no result on it" in rank["verdict"]

    levels = client.get(API, {"rank": "eval:levels"}).json()
    assert (levels["rank"]["rule"], levels["best_checkpoint"]["name"]) == (
        "eval:levels",
        "checkpoint-200",
    )
    assert "most checkpoints" not in levels["rank"]["how"]
    training = client.get(API, {"rank": "training"}).json()
    assert (training["rank"]["rule"], training["best_checkpoint"]["name"]) == (
        "eval_loss",
        "checkpoint-300",
    )
    # Chosen by name, the training rule still says what the default prompt set's best is.
    assert training["rank"]["training_best"] == "checkpoint-300"
    assert training["rank"]["verdict"].startswith("The two rules disagree: checkpoint-400 passes")
    loss = client.get(API, {"rank": "loss", "order": "max"}).json()
    assert (loss["rank"]["rule"], loss["rank"]["metric"]) == ("requested", "loss")
    for bad in ({"rank": "eval:levels", "order": "min"}, {"rank": "training", "order": "max"}):
        assert client.get(API, bad).status_code == 400
    assert client.get(URL, {"rank": "eval:nope"}).status_code == 400
    missing = client.get(API, {"rank": "eval:nope"})
    assert "this run's: eval:tools, eval:levels. Got 'eval:nope'" in missing.json()["error"]


def test_the_switch_pushes_a_shareable_url_and_the_page_keeps_it(client, run_ws):
    evaluated(run_ws, "levels", {"checkpoint-200": (4, 4), "checkpoint-300": (2, 4)})
    swapped = client.get(URL, {"rank": "training", "col": ""}, HTTP_HX_REQUEST="true")
    assert swapped["HX-Push-Url"] == f"{URL}?rank=training&col="
    page = client.get(swapped["HX-Push-Url"]).content.decode()
    assert '<option value="training" data-no-order selected>' in page
    assert '<span class="badge-rule"> · eval_loss</span>' in page
    # The columns form keeps the rule when columns change.
    assert '<input type="hidden" name="rank" value="training">' in page
    shared = client.get(f"{URL}?rank=eval:levels").content.decode()
    assert '<span class="badge-rule"> · eval:levels</span>' in shared
    assert 'value="eval:levels" data-no-order selected' in shared
    # The checkpoint's page scores it by the same rule, and the links there keep the rule.
    ckpt = client.get(f"{URL}checkpoint-200/").content.decode()
    assert "100 %" in ckpt or "100%" in ckpt
    assert f'<a href="{URL}checkpoint-300/?rank=training">' in page
    assert f'<a href="{URL}checkpoint-300/">' in client.get(URL).content.decode()


def test_the_loss_chart_draws_each_prompt_sets_pass_rate_on_a_right_axis(client, run_ws):
    evaluated(run_ws, "levels", {"checkpoint-200": (4, 4), "checkpoint-300": (2, 4)})
    # The final model shares checkpoint-500's step: a dot of its own there, off the line.
    tools = {"checkpoint-100": (1, 5), "final_model": (5, 5), "checkpoint-500": (0, 5)}
    evaluated(run_ws, "tools", tools, second=10)
    page = client.get(URL).content.decode()
    figures = page.split("<figure ")[1:]
    loss = next(f for f in figures if '<strong class="chart-title">Loss</strong>' in f)
    assert 'class="chart has-rates"' in loss
    assert "levels pass rate" in loss and "(right axis, 2 checkpoints)" in loss
    assert '<div class="y2-title">pass rate</div>' in loss
    ticks = loss.split('<div class="y2-ticks"')[1].split("</div>")[0]
    assert [t.split(">")[1].split("<")[0] for t in ticks.split("<span")[1:]] == [
        "0%",
        "25%",
        "50%",
        "75%",
        "100%",
    ]
    assert "levels pass rate: checkpoint-200 4/4, checkpoint-300 2/4</title>" in loss
    config = json.loads(
        loss.split('data-chart="')[1].split('"')[0].replace("&quot;", '"').replace("&amp;", "&")
    )
    assert config["rates"] == [
        {
            "name": "levels",
            "color": config["rates"][0]["color"],
            "steps": [200, 300],
            "values": [1.0, 0.5],
            "labels": ["4/4", "2/4"],
            "checkpoints": ["checkpoint-200", "checkpoint-300"],
        },
        {
            "name": "tools",
            "color": config["rates"][1]["color"],
            "steps": [100, 500, 500],
            "values": [0.2, 0.0, 1.0],
            "labels": ["1/5", "0/5", "5/5"],
            "checkpoints": ["checkpoint-100", "checkpoint-500", "final_model"],
        },
    ]
    assert config["rates"][0]["color"] != config["rates"][1]["color"]
    # Only the loss chart carries them.
    assert sum("has-rates" in f.split(">")[0] for f in figures) == 1
    # The dots sit on the right axis's scale: 100 % near the top, 50 % in the middle.
    marker = loss.split('class="markers rate-markers" data-rate="levels" d="')[1].split('"')[0]
    (x200, y200), (x300, y300) = [
        map(float, p.split(",")) for p in re.findall(r"M([\d.]+,[\d.]+)h0", marker)
    ]
    assert x200 < x300 and round(y200) == 14 and round(y300) == 150
    tools_svg = loss.split('data-rate="tools" d="')[1].split('"')[0]
    assert tools_svg.count("h0") == 3
    line = loss.split('class="rate-line" d="')[2].split('"')[0]
    assert line.count("L") == 1  # checkpoint-100 to checkpoint-500; the final model a dot


def test_no_results_leave_the_chart_as_it_was(client, run_ws):
    page = client.get(URL).content.decode()
    assert "has-rates" not in page and "y2-ticks" not in page and "&quot;rates&quot;:[]" in page


def test_the_charts_data_reads_no_sweep_result(client, run_ws, django_assert_num_queries):
    evaluated(run_ws, "levels", {"checkpoint-200": (4, 4), "checkpoint-300": (2, 4)})
    # The run page and its JSON read every checkpoint's results in one query...
    with django_assert_num_queries(1):
        assert client.get(API).status_code == 200
    # ...and a chart's redraw, which fetches the curves, reads none.
    with django_assert_num_queries(0):
        assert client.get(f"{API}metrics/").status_code == 200


def test_a_checkpoints_page_and_json_list_what_sweeps_measured_of_it(client, run_ws):
    """Opened from the run page's best mark, a checkpoint says how it scored and links the
    result, as its row's column does."""
    evaluated(run_ws, "levels", {"checkpoint-200": (4, 4), "checkpoint-300": (2, 4)})
    row = next(c for c in client.get(API).json()["checkpoints"] if c["name"] == "checkpoint-200")
    body = client.get(f"{API}checkpoint-200/").json()
    assert body["evaluations"] == row["evaluations"] and len(body["evaluations"]) == 1
    page = client.get(f"{URL}checkpoint-200/").content.decode()
    section = page[page.index('id="checkpoint-evaluations"') :].split("</section>")[0]
    assert f'<a href="{row["evaluations"][0]["url"]}" data-eval="levels">4/4 · ' in section
    assert client.get(f"{API}checkpoint-100/").json()["evaluations"] == []
    assert 'id="checkpoint-evaluations"' not in client.get(f"{URL}checkpoint-100/").content.decode()
