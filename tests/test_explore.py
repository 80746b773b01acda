"""/explore/ and its JSON twin: configuration keys against outcomes, on the demo's sweep."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sampledata.demo import SWEEP

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(settings, demo_workspace: Path) -> Path:
    settings.TUNER_WORKSPACE = demo_workspace
    return demo_workspace


def test_without_x_and_y_it_lists_keys_and_outcomes_with_counts(client, demo):
    data = client.get("/api/explore/").json()
    keys = {k["key"]: k["runs"] for k in data["keys"]}
    outcomes = {o["outcome"]: o["runs"] for o in data["outcomes"]}
    assert keys["lora.r"] >= len(SWEEP) and keys["learning_rate"] >= len(SWEEP)
    assert keys["method"] == data["runs"]  # every run has one, from a file or its type
    assert outcomes["best_score"] > 0 and outcomes["metric:eval_loss"] >= len(SWEEP)
    assert any(o.startswith("pass_rate:") for o in outcomes)
    assert {"metric": "eval_loss", "order": "min"} in [
        {"metric": r["metric"], "order": r["order"]} for r in data["rules"]
    ]


def test_every_run_is_a_point_or_missing_with_why(client, demo):
    data = client.get("/api/explore/?x=lora.r&y=best_score&rule=eval_loss").json()
    assert (data["x"], data["y"]) == ("lora.r", "best_score")
    assert data["rule"] == {"metric": "eval_loss", "order": "min"}
    listing = client.get("/api/explore/").json()
    assert len(data["points"]) + len(data["missing"]) == listing["runs"]
    ranks = sorted(p["x"] for p in data["points"] if p["method"] == "sft")
    assert {8, 16, 32, 64} <= set(ranks)
    point = data["points"][0]
    assert set(point) >= {"run", "url", "x", "y", "method", "base_model"}
    assert point["url"] == f"/runs/{point['run']}/"
    assert all(m["why"] for m in data["missing"])
    # A KTO run is scored by its own rule: under eval_loss it is missing, and says why.
    kto = [m for m in data["missing"] if m["run"].startswith("rtx3090_kto/")]
    assert kto and any("eval_loss not logged" in m["why"] for m in kto)


def test_the_sweeps_best_setting_has_the_lowest_eval_loss(client, demo):
    data = client.get("/api/explore/?x=learning_rate&y=metric:eval_loss&at=best").json()
    sweep = {round(p["x"], 12): p["y"] for p in data["points"] if p["method"] == "sft"}
    assert sweep[1e-4] < sweep[5e-5]  # the demo's sweep: 1e-4 on the larger dataset is best
    final = client.get("/api/explore/?x=learning_rate&y=metric:eval_loss&at=final").json()
    assert final["at"] == "final" and final["points"]


def test_pass_rate_of_the_runs_evaluated_models(client, demo):
    listing = client.get("/api/explore/").json()
    prompt_set = next(
        o["outcome"] for o in listing["outcomes"] if o["outcome"].startswith("pass_rate:")
    )
    data = client.get(f"/api/explore/?x=base_model&y={prompt_set}&color=base_model").json()
    assert data["points"] and all(0 <= p["y"] <= 1 for p in data["points"])
    assert any("not evaluated on" in m["why"] for m in data["missing"])


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("x=nonsense&y=best_score", "x must be a configuration key of some run: base_model"),
        ("x=lora.r&y=score", "y must be one of: best_score"),
        ("x=lora.r&y=metric:nonsense", "y must be one of"),
        ("x=lora.r&y=best_score&rule=nope", "rule must be one of"),
        ("x=lora.r&y=best_score&color=pink", "color must be one of: method, base_model"),
        ("x=lora.r&y=metric:eval_loss&at=middle", "at must be one of: best, final"),
    ],
)
def test_a_bad_query_is_a_400_that_lists_the_valid_values(client, demo, query, says):
    api = client.get(f"/api/explore/?{query}")
    assert api.status_code == 400 and says in api.json()["error"]
    assert client.get(f"/explore/?{query}").status_code == 400


def test_the_page_draws_points_that_open_their_runs(client, demo):
    url = "/explore/?x=learning_rate&y=best_score&rule=eval_loss"
    page = client.get(url).content.decode()
    data = client.get(url.replace("/explore/", "/api/explore/")).json()
    assert page.count('class="xp-point"') == len(data["points"])
    for p in data["points"]:
        assert f'href="{p["url"]}"' in page
    assert "(log)" in page  # learning rates spread over decades
    assert f"{len(data['missing'])} runs not shown, and why" in page
    assert "Parallel axes</h3>" not in page
    both = client.get(url + "&x=lora.r&x=dataset").content.decode()
    assert both.count('class="xp-line"') == len(data["points"])


def test_a_change_pushes_the_shareable_url(client, demo):
    response = client.get(
        "/explore/?x=lora.r&y=best_score&color=method&xscale=&rule=", HTTP_HX_REQUEST="true"
    )
    assert response["HX-Push-Url"] == "/explore/?x=lora.r&y=best_score"
    assert 'id="explore-body"' in response.content.decode()
    assert "<html" not in response.content.decode()


def _sweep_runs(client) -> dict[int, str]:
    data = client.get("/api/explore/?x=lora.r&x=learning_rate&y=metric:eval_loss").json()
    return {
        p["x"]: p["run"]
        for p in data["points"]
        if p["method"] == "sft" and p["values"]["learning_rate"] == 2e-4 and p["x"] != 32
    }


def test_compare_shows_only_the_settings_that_differ(client, demo):
    runs = _sweep_runs(client)
    query = f"?run={runs[8]}&run={runs[64]}"
    data = client.get(f"/api/compare/{query}").json()
    diff = {d["key"]: d["values"] for d in data["config_diff"]}
    assert diff == {"lora.r": [8, 64], "lora.alpha": [16, 128]}
    assert data["config_same_count"] > 10  # base model, learning rate, dataset, GPU, …
    page = client.get(f"/compare/{query}").content.decode()
    table = page.split('id="config-diff"')[1].split("</table>")[0]
    assert "2 settings differ" in table and "<code>lora.r</code>" in table
    assert "<code>learning_rate</code>" not in table
    assert f"{data['config_same_count']} identical settings folded" in page
    # The table comes before the curves.
    assert page.index('id="config-diff"') < page.index('class="chart')


def test_a_setting_one_run_lacks_is_a_difference(client, demo):
    runs = _sweep_runs(client)
    data = client.get("/api/explore/?x=method&y=best_score").json()
    grpo = next(p["run"] for p in data["points"] + data["missing"] if p["run"].startswith("grpo/"))
    diff = client.get(f"/api/compare/?run={runs[8]}&run={grpo}").json()["config_diff"]
    dataset = next(d for d in diff if d["key"] == "dataset")
    assert dataset["values"][1] is None


def test_a_warm_answer_with_nothing_changed_reads_no_run_detail(client, demo, monkeypatch):
    from discovery import runs

    urls = [
        "/api/explore/",
        "/api/explore/?x=lora.r&y=best_score&rule=eval_loss",
        "/api/explore/?x=learning_rate&x=lora.r&y=metric:eval_loss&at=final",
        "/explore/?x=lora.r&y=best_score",
    ]

    def answers() -> list[bytes]:
        # The page's CSRF token is masked afresh on every response.
        return [re.sub(rb'"x-csrftoken": "[^"]+"', b"", client.get(u).content) for u in urls]

    first = answers()

    def refuse(*args, **kwargs):
        raise AssertionError("a warm /explore/ read a run's detail")

    # Details left encoded in the store, as a server keeps the runs no page showed: reading
    # one again is a decode (or a log read), which nothing unchanged should cost.
    runs._memo.clear()
    for name in ("_restored", "_hf_detail", "_mlx_detail"):
        monkeypatch.setattr(runs, name, refuse)
    assert answers() == first
