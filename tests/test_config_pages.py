"""A run's configuration on its page and in its JSON twin."""

from __future__ import annotations

import json
import os
import time

import pytest

from sampledata import runs as wb

from .conftest import started
from .test_config import LF_ADAPTER, LF_ARGS, LF_CARD, LF_STATE

pytestmark = pytest.mark.django_db


@pytest.fixture
def peft_run(use_workspace):
    """An upstream run still training (no lineage yet): its adapter configs say the LoRA."""
    run = wb.make_run(
        use_workspace, "sft", started("20251101_100000"), max_steps=100, completed=False
    )
    ckpt = run / "checkpoints" / "checkpoint-100" / "adapter_config.json"
    wb.write_json(ckpt, json.loads(ckpt.read_text()) | {"r": 16, "lora_alpha": 32.0})
    return run


def test_run_json_carries_config_and_sources(client, peft_run):
    data = client.get("/api/runs/rtx3090_sft/20251101_100000/").json()
    assert data["config"]["lora.r"] == 16
    assert data["config"]["lora.alpha"] == 32
    assert data["config_sources"]["lora.r"] == "checkpoints/checkpoint-100/adapter_config.json"
    assert set(data["config"]) == set(data["config_sources"])


def test_run_page_header_and_configuration_panel(client, settings, tmp_path):
    folder = tmp_path / "outputs" / "qwen3-lora"
    (folder / "checkpoint-10").mkdir(parents=True)
    (folder / "training_args.yaml").write_text(LF_ARGS)
    wb.write_json(folder / "adapter_config.json", LF_ADAPTER)
    (folder / "README.md").write_text(LF_CARD)
    wb.write_json(folder / "trainer_state.json", LF_STATE)
    old = time.time() - 6000
    os.utime(folder / "training_args.yaml", (old, old))
    settings.TUNER_RUN_DIRS = [folder]
    page = client.get("/runs/qwen3-lora/qwen3-lora/").content.decode()
    header = page.split('id="configuration"')[0]
    assert '<dt title="from adapter_config.json">LoRA r</dt><dd>8</dd>' in header
    assert "Learning rate" in header and "5e-5" in header
    assert "Effective batch" in header and ">112<" in header
    panel = page.split('id="configuration"')[1].split("</section>")[0]
    assert "Files disagree on <code>lora.target_modules</code>" in panel
    assert "all in <code>training_args.yaml</code>" in panel
    assert "<code>finetuning_type</code>" in panel and "training_args.yaml" in panel
    assert "Not read: <code>training_args.bin</code>" not in panel


def test_run_page_says_when_no_file_gives_a_configuration(client, use_workspace):
    run = wb.make_run(
        use_workspace, "sft", started("20251101_100000"), max_steps=100, completed=False
    )
    for ckpt in (run / "checkpoints").iterdir():
        (ckpt / "adapter_config.json").unlink()
        (ckpt / "trainer_state.json").unlink()
    page = client.get("/runs/rtx3090_sft/20251101_100000/").content.decode()
    assert "No configuration file in this run's folder" not in page  # the run type is one
    assert 'id="configuration"' in page


@pytest.fixture
def demo(settings, demo_workspace):
    settings.TUNER_WORKSPACE = demo_workspace
    return demo_workspace


def test_run_list_twin_carries_the_chosen_settings(client, demo):
    data = client.get("/api/runs/?col=lora.r&col=learning_rate").json()
    assert all(set(r["config"]) == {"lora.r", "learning_rate"} for r in data["runs"])
    mlx_or_grpo = [r for r in data["runs"] if r["trainer"] == "grpo"]
    assert mlx_or_grpo and mlx_or_grpo[0]["config"]["learning_rate"] is None  # null, not absent
    plain = client.get("/api/runs/").json()
    assert all("config" not in r for r in plain["runs"])


def test_where_filters_combine_and_a_config_column_sorts(client, demo):
    data = client.get("/api/runs/?col=lora.r&where=lora.r>=32&where=method=sft&sort=-lora.r")
    runs = data.json()["runs"]
    ranks = [r["config"]["lora.r"] for r in runs]
    assert ranks and all(x >= 32 for x in ranks) and ranks == sorted(ranks, reverse=True)
    assert all(r["type"] == "sft" for r in runs)
    assert 64 in ranks and 16 not in ranks
    low = client.get("/api/runs/?col=learning_rate&where=learning_rate<1e-4").json()["runs"]
    assert low and all(r["config"]["learning_rate"] < 1e-4 for r in low)


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("col=nope", "col must name a configuration key of some run: base_model, method"),
        ("where=nope=1", "where must name a configuration key of some run"),
        ("where=lora.r~32", "operator among <=, >=, !=, =, <, >"),
        ("where=lora.r>=", "operator among"),
        ("sort=lora.r", "sort must be one of"),  # a configuration sort needs its column
    ],
)
def test_a_bad_column_or_filter_is_a_400_listing_the_valid_ones(client, demo, query, says):
    response = client.get(f"/api/runs/?{query}")
    assert response.status_code == 400 and says in response.json()["error"]
    assert client.get(f"/runs/?{query}").status_code == 400


def test_run_list_page_shows_config_columns_and_pushes_the_url(client, demo):
    page = client.get("/runs/?col=lora.r&col=learning_rate&sort=lora.r").content.decode()
    assert page.count('class="num c-cfg"') == 2 * page.count('name="run" value=')
    assert 'aria-sort="ascending"' in page and "lora.r ▲" in page
    response = client.get(
        "/runs/?col=lora.r&col=learning_rate&where=lora.r>=32&trainer=&q=",
        HTTP_HX_REQUEST="true",
    )
    assert response["HX-Push-Url"] == ("/runs/?col=lora.r&col=learning_rate&where=lora.r%3E%3D32")


def test_a_run_list_without_setting_columns_reads_no_configuration(client, demo, monkeypatch):
    """Only the page's rows need their configuration, and only for the columns asked."""
    from tuner_site import config_columns

    read: list[str] = []
    real = config_columns.config_of
    monkeypatch.setattr(config_columns, "config_of", lambda r: read.append(r.id) or real(r))
    assert client.get("/runs/").status_code == 200
    assert client.get("/runs/?page=1&sort=run").status_code == 200
    assert read == []
    page = client.get("/runs/?col=lora.r").content.decode()
    assert 0 < len(read) == page.count('name="run" value=')


def test_setting_cells_name_their_file_and_escape_what_a_file_says(client, peft_run):
    ckpt = peft_run / "checkpoints" / "checkpoint-100" / "adapter_config.json"
    wb.write_json(ckpt, json.loads(ckpt.read_text()) | {"base_model_name_or_path": "o/<i>m</i>"})
    page = client.get("/runs/?col=base_model&col=lora.r&col=beta").content.decode()
    source = "checkpoints/checkpoint-100/adapter_config.json"
    assert (
        f'<td class="num c-cfg" title="from {source}"><span class="card-label">base_model </span>'
        "o/&lt;i&gt;m&lt;/i&gt;</td>"
    ) in page
    assert f'title="from {source}"><span class="card-label">lora.r </span>16</td>' in page
    assert '<td class="num c-cfg"><span class="card-label">beta </span>—</td>' in page
    assert "<i>m</i>" not in page
