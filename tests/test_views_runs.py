"""Run and checkpoint pages, their JSON twins, and their errors."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from django.template.defaultfilters import filesizeformat

from sampledata import runs as wb
from tuner_site import workspace as site_workspace

from .conftest import KTO_RUN as KTO
from .conftest import RUNNING_RUN as RUNNING
from .conftest import SFT_RUN as SFT
from .conftest import age, started

pytestmark = pytest.mark.django_db


@pytest.fixture
def ws(three_runs: Path) -> Path:
    return three_runs


def get_json(client, url: str, status: int = 200):
    response = client.get(url)
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == "application/json"
    return json.loads(response.content)


def test_the_run_list_shows_every_run_with_status_and_best(client, ws):
    html = client.get("/runs/").content.decode()
    for name in (SFT, KTO, RUNNING):
        assert f'href="/runs/rtx3090_{"sft" if name == SFT else "kto"}/{name}/"' in html
    assert "running" in html and "completed" in html
    assert "eval_loss" in html and "margin/kl" in html


def test_the_run_list_json_has_the_contract_fields(client, ws):
    data = get_json(client, "/api/runs/")
    assert data["count"] == 3
    run = data["runs"][0]
    assert {
        "trainer",
        "type",
        "run",
        "url",
        "status",
        "started_at",
        "base_model",
        "checkpoint_count",
        "has_final_model",
        "last_step",
        "best_checkpoint",
    } <= set(run)
    assert [r["run"] for r in data["runs"]] == [RUNNING, KTO, SFT]
    assert run["status"] == "running" and run["last_step"] == 40 and run["has_final_model"] is False
    sft = data["runs"][2]
    assert sft["best_checkpoint"]["rule"] == "eval_loss"
    assert sft["started_at"] == "2025-11-01T10:00:00"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("type=kto", [RUNNING, KTO]),
        ("status=completed", [KTO, SFT]),
        ("status=running", [RUNNING]),
        ("q=20251101", [SFT]),
        ("q=MISTRAL", [RUNNING, KTO, SFT]),
        ("sort=started", [SFT, KTO, RUNNING]),
        ("sort=-last_step&type=kto", [KTO, RUNNING]),
        ("sort=run", [SFT, KTO, RUNNING]),
        ("trainer=rtx3090_kto&status=completed", [KTO]),
        ("trainer=rtx3090_sft", [SFT]),
    ],
)
def test_the_run_list_filters_and_sorts_by_query_parameters(client, ws, query, expected):
    data = get_json(client, f"/api/runs/?{query}")
    assert [r["run"] for r in data["runs"]] == expected
    assert data["count"] == len(expected)


def test_the_run_list_paginates(client, ws, settings):
    settings.TUNER_RUNS_PER_PAGE = 2
    first = get_json(client, "/api/runs/")
    second = get_json(client, "/api/runs/?page=2")
    assert first["count"] == second["count"] == 3
    assert [r["run"] for r in first["runs"] + second["runs"]] == [RUNNING, KTO, SFT]
    html = client.get("/runs/").content.decode()
    assert "?page=2" in html


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("type=nope", "type must be one of: kto, sft"),
        ("trainer=../etc", "trainer must be one of: rtx3090_kto, rtx3090_sft"),
        ("status=done", "status must be one of: running, completed, stopped"),
        ("sort=size", "sort must be one of"),
        ("page=abc", "page must be a whole number"),
        ("page=0", "page must be a whole number"),
        ("page=99", "page must be between 1 and 1"),
    ],
)
def test_bad_run_list_parameters_are_a_400_that_says_what_is_accepted(client, ws, query, says):
    assert says in get_json(client, f"/api/runs/?{query}", status=400)["error"]
    response = client.get(f"/runs/?{query}")
    assert response.status_code == 400
    assert says in response.content.decode()


def test_an_htmx_request_gets_just_the_table_fragment(client, ws):
    response = client.get("/runs/?type=kto", headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="runs-table"') and 'hx-trigger="every 3s' in html
    assert "<html" not in html and RUNNING in html and SFT not in html


def test_the_run_page_highlights_the_best_checkpoint_and_names_its_rule(client, ws):
    html = client.get(f"/runs/rtx3090_kto/{KTO}/").content.decode()
    data = get_json(client, f"/api/runs/rtx3090_kto/{KTO}/")
    best = data["best_checkpoint"]["name"]
    assert '<tr class="best"' in html
    assert 'best<span class="badge-rule"> · margin/kl</span>' in html
    assert "checkpoint-detail" not in html  # names only, no template leftovers
    assert html.index('class="best"') < html.index(f'/{best}/">{best}</a> <span class="best-badge"')
    assert "<svg" in html and 'data-series="loss"' in html


def test_the_run_json_has_the_contract_fields(client, ws):
    data = get_json(client, f"/api/runs/rtx3090_kto/{KTO}/")
    assert {
        "trainer",
        "type",
        "run",
        "url",
        "status",
        "best_checkpoint",
        "rank",
        "skipped_log_lines",
        "checkpoints",
    } <= set(data)
    assert data["rank"] == {
        "rule": "margin/kl",
        "metric": "margin/kl",
        "order": "max",
        "how": "ranked by rewards/margins ÷ kl on one line, highest wins, over checkpoints "
        "whose kl is above 0 and at least a tenth of the run's median positive kl",
        # No checkpoint evaluated on a prompt set: the training rule's pick, no sentence.
        "training_best": data["best_checkpoint"]["name"],
        "verdict": None,
        "prompt_sets": [],
    }
    names = [c["name"] for c in data["checkpoints"]]
    assert names == [
        "final_model",
        "checkpoint-25",
        "checkpoint-50",
        "checkpoint-75",
        "checkpoint-100",
    ]
    cp = data["checkpoints"][1]
    assert set(cp) >= {
        "name",
        "step",
        "is_final",
        "metrics",
        "metrics_step",
        "score",
        "best",
        "url",
    }
    assert sum(c["best"] for c in data["checkpoints"]) == 1
    assert cp["url"] == f"/runs/rtx3090_kto/{KTO}/checkpoint-25/"


def test_rank_and_order_rerank_the_table(client, ws):
    data = get_json(client, f"/api/runs/rtx3090_kto/{KTO}/?rank=loss&order=max")
    assert data["rank"] == {
        "rule": "requested",
        "metric": "loss",
        "order": "max",
        "how": "ranked by loss, highest wins",
        "training_best": data["best_checkpoint"]["name"],
        "verdict": None,
        "prompt_sets": [],
    }
    losses = {c["name"]: c["metrics"]["loss"] for c in data["checkpoints"] if not c["is_final"]}
    assert data["best_checkpoint"]["name"] == max(losses, key=losses.get)
    html = client.get(f"/runs/rtx3090_kto/{KTO}/?rank=loss&order=max").content.decode()
    assert "ranked by loss, highest wins" in html


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("rank=accuracy", "rank must be a metric this run logged"),
        ("rank=loss&order=up", "order must be one of: min, max"),
        ("order=min", "order applies with rank"),
    ],
)
def test_bad_rank_parameters_are_a_400(client, ws, query, says):
    assert says in get_json(client, f"/api/runs/rtx3090_kto/{KTO}/?{query}", status=400)["error"]
    assert client.get(f"/runs/rtx3090_kto/{KTO}/?{query}").status_code == 400


def test_the_metrics_json_aligns_every_series_with_steps(client, ws):
    data = get_json(client, f"/api/runs/rtx3090_sft/{SFT}/metrics/")
    assert data["steps"] == sorted(data["steps"]) and data["steps"][-1] == 100
    for values in data["series"].values():
        assert len(values) == len(data["steps"])
    eval_loss = data["series"]["eval_loss"]
    assert [s for s, v in zip(data["steps"], eval_loss, strict=True) if v is not None] == [
        25,
        50,
        75,
        100,
    ]


def test_the_checkpoint_page_shows_metrics_files_adapter_path_and_neighbours(client, ws):
    html = client.get(f"/runs/rtx3090_kto/{KTO}/checkpoint-50/").content.decode()
    assert "adapter_model.safetensors" in html and "4.0\xa0KB" in html
    assert "rewards/margins" in html
    assert (
        str(ws / "Trainers/rtx3090_kto/kto_output_rtx3090" / KTO / "checkpoints/checkpoint-50")
        in html
    )
    assert f'href="/runs/rtx3090_kto/{KTO}/checkpoint-25/" rel="prev"' in html
    assert f'href="/runs/rtx3090_kto/{KTO}/checkpoint-75/" rel="next"' in html


def test_the_checkpoint_json_has_the_contract_fields(client, ws):
    data = get_json(client, f"/api/runs/rtx3090_kto/{KTO}/final_model/")
    assert {
        "trainer",
        "run",
        "name",
        "step",
        "is_final",
        "metrics",
        "metrics_step",
        "files",
        "adapter",
    } <= set(data)
    assert data["is_final"] is True and data["step"] == 100
    assert {"name": "adapter_model.safetensors", "size": 8192} in data["files"]
    assert data["adapter"]["r"] == 32


def test_non_finite_metrics_are_null_in_json_and_spelled_out_in_html(client, use_workspace):
    run = use_workspace / "Trainers/rtx3090_sft/sft_output_rtx3090" / SFT
    wb.write_log(run, ['{"step": 10, "loss": NaN, "grad_norm": Infinity}'], "20251101_100100")
    wb.add_checkpoint(run, 10)
    data = get_json(client, f"/api/runs/rtx3090_sft/{SFT}/")
    assert data["checkpoints"][0]["metrics"] == {"loss": None, "grad_norm": None}
    assert data["checkpoints"][0]["score"] is None and data["best_checkpoint"] is None
    html = client.get(f"/runs/rtx3090_sft/{SFT}/").content.decode()
    assert ">NaN<" in html and ">∞<" in html
    series = get_json(client, f"/api/runs/rtx3090_sft/{SFT}/metrics/")["series"]
    assert series == {"loss": [None], "grad_norm": [None]}


def test_skipped_log_lines_are_reported(client, use_workspace):
    run = use_workspace / "Trainers/rtx3090_sft/sft_output_rtx3090" / SFT
    wb.write_log(run, ['{"step": 10, "loss": 1}', "garbage", '{"step": 20, "lo'], "20251101_100100")
    wb.add_checkpoint(run, 10)
    assert get_json(client, f"/api/runs/rtx3090_sft/{SFT}/")["skipped_log_lines"] == 2
    assert (
        "2 log lines could not be read" in client.get(f"/runs/rtx3090_sft/{SFT}/").content.decode()
    )


@pytest.mark.parametrize(
    "path",
    [
        "runs/rtx3090_xxx/20251101_100000/",
        f"runs/rtx3090_sft/{KTO}/",
        f"runs/rtx3090_kto/{KTO}/checkpoint-26/",
        f"runs/rtx3090_kto/{KTO}/checkpoints/",
        f"runs/rtx3090_kto/{KTO}/optimizer.pt/",
    ],
)
def test_unknown_trainers_runs_and_checkpoints_are_404s(client, ws, path):
    assert "error" in get_json(client, f"/api/{path}", status=404)
    response = client.get(f"/{path}")
    assert response.status_code == 404
    assert 'href="/runs/"' in response.content.decode()


def test_the_overview_shows_running_runs_with_progress_and_newest_per_trainer(client, ws):
    html = client.get("/").content.decode()
    training_now = html[html.index("Training now") : html.index("rtx3090_kto</a></h2>")]
    assert RUNNING in training_now and KTO not in training_now
    assert "step 40 / 100" in training_now and 'role="progressbar"' in training_now
    assert "rtx3090_sft" in html and SFT in html


def test_the_overviews_runs_refresh_in_one_fragment_the_overview_includes(client, ws, monkeypatch):
    # The refresh must not wait for any inference server.
    monkeypatch.setattr(site_workspace, "backend_statuses", lambda: pytest.fail("probed backends"))
    fragment = client.get(
        "/", headers={"HX-Request": "true", "HX-Target": "overview-runs"}
    ).content.decode()
    monkeypatch.undo()
    assert fragment.lstrip().startswith('<div id="overview-runs"') and "<html" not in fragment
    # "Training now" and every trainer's card, so the two cannot disagree.
    assert 'id="running-now"' in fragment and fragment.count('class="card trainer-card"') == 2
    assert RUNNING in fragment and "Inference servers" not in fragment
    page = client.get("/").content.decode()
    start = page.index('<div id="overview-runs"')
    assert page[start : start + len(fragment.strip())] == fragment.strip()
    assert fragment.count("hx-trigger=") == 1 and 'hx-trigger="every 3s"' in fragment


def test_each_checkpoint_reports_its_size_on_disk_without_links_out(client, ws, tmp_path):
    ckpt = wb.output_dir(ws, "kto") / KTO / "checkpoints" / "checkpoint-50"
    (ckpt / "weights.bin").write_bytes(b"\0" * 10_000)
    (tmp_path / "big.bin").write_bytes(b"\0" * 99_999)
    (ckpt / "linked.bin").symlink_to(tmp_path / "big.bin")
    expected = sum(p.stat().st_size for p in ckpt.rglob("*") if p.is_file() and not p.is_symlink())
    data = get_json(client, f"/api/runs/rtx3090_kto/{KTO}/")
    sizes = {c["name"]: c["size"] for c in data["checkpoints"]}
    assert sizes["checkpoint-50"] == expected and expected >= 10_000
    assert data["size_on_disk"] == sum(sizes.values())
    html = client.get(f"/runs/rtx3090_kto/{KTO}/").content.decode()
    assert "On disk" in html and f'<td class="num size">{filesizeformat(expected)}</td>' in html


def test_the_header_shows_what_the_lineage_holds_and_nothing_it_does_not(client, ws):
    facts = client.get(f"/runs/rtx3090_kto/{KTO}/").content.decode()
    facts = facts[facts.index('<section class="card facts">') :]
    facts = facts[: facts.index("</section>")]
    assert "NVIDIA GeForce RTX 3090" in facts and "24 GB" in facts
    assert "Training time</dt><dd>50m 0s" in facts  # 100 steps at 30 s, as train_runtime says
    assert "val loss" not in facts and "perplexity" not in facts and "Final loss" not in facts


def test_a_training_run_without_lineage_takes_lora_from_its_newest_adapter(client, ws):
    ckpt = wb.output_dir(ws, "kto") / RUNNING / "checkpoints" / "checkpoint-40"
    adapter = json.loads((ckpt / "adapter_config.json").read_text())
    (ckpt / "adapter_config.json").write_text(json.dumps({**adapter, "r": 48, "lora_alpha": 96}))
    html = client.get(f"/runs/rtx3090_kto/{RUNNING}/").content.decode()
    assert "LoRA r</dt><dd>48<" in html and "LoRA alpha</dt><dd>96<" in html


def test_the_run_list_polls_while_a_run_on_the_page_trains(client, ws):
    assert 'hx-trigger="every 3s [' in client.get("/runs/").content.decode()
    assert 'hx-trigger="every' not in client.get("/runs/?status=completed").content.decode()


def test_a_poll_of_the_run_list_adds_no_history_entry_but_a_filter_does(client, ws):
    poll = client.get("/runs/", headers={"HX-Request": "true", "HX-Trigger": "runs-table"})
    assert "HX-Push-Url" not in poll
    filtered = client.get("/runs/?type=kto&q=", headers={"HX-Request": "true"})
    assert filtered["HX-Push-Url"] == "/runs/?type=kto"


def test_the_running_run_page_polls_and_a_finished_one_does_not(client, ws):
    running = client.get(f"/runs/rtx3090_kto/{RUNNING}/").content.decode()
    assert 'hx-trigger="every 3s"' in running
    done = client.get(f"/runs/rtx3090_kto/{KTO}/").content.decode()
    assert 'hx-trigger="every' not in done
    fragment = client.get(
        f"/runs/rtx3090_kto/{RUNNING}/", headers={"HX-Request": "true"}
    ).content.decode()
    assert fragment.lstrip().startswith('<div id="run-live"') and "<html" not in fragment


def test_a_missing_workspace_is_a_clear_page_not_a_500(client, settings, tmp_path):
    settings.TUNER_WORKSPACE = tmp_path / "missing"
    response = client.get("/runs/")
    assert response.status_code == 503
    assert "TUNER_WORKSPACE" in response.content.decode()
    assert "TUNER_WORKSPACE" in get_json(client, "/api/runs/", status=503)["error"]


def test_numbers_beyond_64_bits_in_workspace_files_are_served_not_a_500(client, ws):
    run = wb.output_dir(ws, "kto") / KTO
    # NaN makes the file unreadable to orjson; Python's json then keeps 10**30 an int.
    lineage = {"training": {"total_flos": 10**30, "final_loss": math.nan}}
    wb.write_json(run / "training_lineage.json", lineage)
    data = get_json(client, f"/api/runs/rtx3090_kto/{KTO}/")
    assert data["lineage"]["training"] == {"total_flos": 10**30, "final_loss": None}
    assert client.get(f"/runs/rtx3090_kto/{KTO}/").status_code == 200


def test_the_json_link_keeps_the_page_and_every_filter(client, ws, settings):
    settings.TUNER_RUNS_PER_PAGE = 1
    html = client.get("/runs/?page=2&sort=run").content.decode()
    link = re.search(r'class="muted twin" href="([^"]+)"', html).group(1)
    assert link == "/api/runs/?page=2&amp;sort=run"
    second = get_json(client, "/api/runs/?page=2&sort=run")
    assert second["page"] == 2 and second["runs"][0]["run"] == KTO


def test_every_page_links_its_json_twin_with_the_whole_query(client, ws):
    for url in (
        "/",
        "/runs/?type=kto&status=completed",
        f"/runs/rtx3090_kto/{KTO}/?rank=loss&order=max",
        f"/runs/rtx3090_kto/{KTO}/checkpoint-50/",
        f"/compare/?run=rtx3090_kto/{KTO}&metric=kl",
        "/backends/",
        "/evaluations/",
    ):
        html = client.get(url).content.decode()
        twin = "/api" + url.replace("&", "&amp;")
        assert f'href="{twin}"' in html, url
        assert client.get(twin.replace("&amp;", "&")).status_code == 200, twin


def test_the_run_json_carries_the_lora_its_page_shows(client, ws):
    ckpt = wb.output_dir(ws, "kto") / RUNNING / "checkpoints" / "checkpoint-40"
    adapter = json.loads((ckpt / "adapter_config.json").read_text())
    (ckpt / "adapter_config.json").write_text(json.dumps({**adapter, "r": 48, "lora_alpha": 96}))
    data = get_json(client, f"/api/runs/rtx3090_kto/{RUNNING}/")
    assert data["header"]["lora"] == {"rank": 48, "alpha": 96}
    done = get_json(client, f"/api/runs/rtx3090_kto/{KTO}/")
    assert done["header"]["lora"] == {"rank": 32, "alpha": 64}  # from the lineage
    assert done["header"]["base_model"] == done["base_model"]


def test_the_overview_has_a_json_twin(client, ws):
    data = get_json(client, "/api/")
    assert data["run_count"] == 3
    assert [r["run"] for r in data["running"]] == [RUNNING]
    trainers = {t["trainer"]: [r["run"] for r in t["runs"]] for t in data["trainers"]}
    assert trainers == {"rtx3090_kto": [RUNNING, KTO], "rtx3090_sft": [SFT]}
    assert {t["trainer"]: t["run_count"] for t in data["trainers"]} == {
        "rtx3090_kto": 2,
        "rtx3090_sft": 1,
    }
    assert set(data) >= {"backends", "prompt_sets", "evaluations"}


def test_a_trainer_card_links_to_all_its_runs_when_it_shows_only_the_newest(client, ws):
    assert "All " not in client.get("/").content.decode()
    for day in range(1, 6):
        wb.make_run(ws, "sft", started(f"202511{day + 10:02d}_100000"), max_steps=20, seed=day)
    age(ws / "Trainers", 7200)
    html = client.get("/").content.decode()
    assert 'href="/runs/?trainer=rtx3090_sft">All 6 runs of rtx3090_sft →</a>' in html
    assert "All 2 runs" not in html  # the KTO card shows both of its runs


def _scores(data):
    return [(r["best_checkpoint"] or {}).get("rule") for r in data["runs"]], [
        (r["best_checkpoint"] or {}).get("score") for r in data["runs"]
    ]


def test_sorting_by_score_groups_runs_by_rule_each_best_first(client, ws):
    wb.make_run(ws, "sft", started("20251103_100000"), max_steps=100, eval_every=25, seed=7)
    wb.make_run(ws, "kto", started("20251104_100000"), max_steps=100, save_every=25, seed=8)
    rules, scores = _scores(get_json(client, "/api/runs/?sort=best_score"))
    assert rules == ["eval_loss", "eval_loss", "margin/kl", "margin/kl", "margin/kl"]
    assert scores[:2] == sorted(scores[:2])  # lower is better
    assert scores[2:] == sorted(scores[2:], reverse=True)  # higher is better
    rules, worst_first = _scores(get_json(client, "/api/runs/?sort=-best_score"))
    assert worst_first == [*scores[:2][::-1], *scores[2:][::-1]]
    html = client.get("/runs/?sort=best_score").content.decode()
    headings = re.findall(r'<tr class="group"><th colspan="9" scope="rowgroup">([^<]+)</th>', html)
    assert headings == ["Score: eval_loss, lower is better", "Score: margin/kl, higher is better"]
    assert '<tr class="group">' not in client.get("/runs/").content.decode()


def test_a_stopped_run_says_when_it_last_wrote_and_why_it_is_not_running(client, ws):
    stopped = wb.make_run(
        ws, "sft", started("20251105_100000"), max_steps=100, done=60, completed=False
    )
    age(stopped, 3 * 3600)
    html = client.get(f"/runs/rtx3090_sft/{stopped.name}/").content.decode()
    note = html[html.index('class="status-note') : html.index("</p>", html.index("status-note"))]
    assert "Last wrote 3\xa0hours ago" in note and "TUNER_RUNNING_WINDOW" in note
    assert "longer than 10m 0s" in note and "no final_model/, saved model" in note
    assert "resume it from its newest checkpoint" in note
    data = get_json(client, f"/api/runs/rtx3090_sft/{stopped.name}/")
    assert data["status"] == "stopped" and data["last_write_at"].endswith("+00:00")
    running = client.get(f"/runs/rtx3090_kto/{RUNNING}/").content.decode()
    assert "A run counts as running while it writes within 10m 0s" in running
    assert 'class="status-note' not in client.get(f"/runs/rtx3090_kto/{KTO}/").content.decode()


def test_no_best_checkpoint_is_a_sentence_that_says_why(client, use_workspace):
    run = wb.output_dir(use_workspace, "sft") / "20251106_100000"
    wb.add_checkpoint(run, 10)
    wb.write_log(run, [{"step": 5, "epoch": 0.1}, {"step": 10, "epoch": 0.2}], "20251106_100200")
    html = client.get(f"/runs/rtx3090_sft/{run.name}/").content.decode()
    assert "<strong>No best checkpoint.</strong>" in html
    assert (
        "Its one checkpoint does not have a finite eval_loss logged at its own step or a finite "
        "loss logged at or before its step, so none can be ranked by eval_loss or loss "
        "(lowest wins)." in html
    )


def test_every_status_badge_is_drawn_by_one_template(client, ws):
    templates = Path(__file__).resolve().parent.parent / "templates"
    for path in templates.rglob("*.html"):
        if path.name != "_status.html":
            assert 'class="status ' not in path.read_text(), path
    html = client.get("/runs/").content.decode()
    assert '<span class="status status-running">running</span>' in html


def test_the_sort_menu_offers_every_sort_once_with_the_current_one_selected(client, ws):
    from tuner_site.run_listing import SORT_OPTIONS, SORTS

    assert sorted(v for v, _ in SORT_OPTIONS) == sorted(SORTS)
    html = client.get("/runs/?sort=best_score").content.decode()
    assert '<option value="best_score" selected>score, best first in each rule</option>' in html


def test_a_header_sort_updates_the_sort_menu_but_a_poll_leaves_it_alone(client, ws):
    swap = client.get("/runs/?sort=run", headers={"HX-Request": "true"}).content.decode()
    menu = swap[swap.index('<select name="sort" id="sort-select" hx-swap-oob="true">') :]
    assert '<option value="run" selected>' in menu
    poll = client.get(
        "/runs/?sort=run", headers={"HX-Request": "true", "HX-Trigger": "runs-table"}
    ).content.decode()
    assert "hx-swap-oob" not in poll
    page = client.get("/runs/?sort=run").content.decode()
    assert page.count('id="sort-select"') == 1 and "hx-swap-oob" not in page
