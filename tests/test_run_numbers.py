"""What the run and checkpoint pages say in numbers: units, counts that agree between pages,
unscored checkpoints counted and explained, and an MLX checkpoint shown as the .npz it is."""

from __future__ import annotations

import html as htmllib
import json
import re
from datetime import datetime
from pathlib import Path

import pytest

from sampledata import runs as wb

from .conftest import KTO_RUN as KTO
from .conftest import age, run_dir, started

pytestmark = pytest.mark.django_db


def text(page: str) -> str:
    """The words of a page, each cell and element apart."""
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def prose(page: str) -> str:
    """The sentences of a page, its inline markup dropped."""
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", "", page)).split())


@pytest.fixture
def ws(three_runs: Path) -> Path:
    return three_runs


def late_eval_run(root: Path) -> Path:
    """An SFT run saved every 25 steps whose first evaluation is at step 100."""
    return wb.make_run(
        root, "sft", started("20251102_100000"), max_steps=125, save_every=25, eval_every=100
    )


def test_the_run_page_counts_unscored_checkpoints_and_says_why_beside_the_rule(client, ws):
    run = late_eval_run(ws)
    page = client.get(f"/runs/rtx3090_sft/{run.name}/").content.decode()
    rule = prose(
        page[page.index('<p class="rule">') : page.index("</p>", page.index('class="rule"'))]
    )
    assert rule.startswith(
        "Best: checkpoint-100, ranked by eval_loss logged at the checkpoint's own step, "
        "lowest wins."
    )
    assert rule.endswith(
        "5 of 6 checkpoints have no eval_loss logged at their own step (evaluations ran only "
        "at step 100, checkpoints every 25), so they have no score."
    )
    data = json.loads(client.get(f"/api/runs/rtx3090_sft/{run.name}/").content)
    assert data["unscored"] == 5 and data["unscored_note"] == rule.split("wins. ")[1]
    scored = json.loads(client.get(f"/api/runs/rtx3090_kto/{KTO}/").content)
    assert scored["unscored"] == 0 and scored["unscored_note"] is None
    assert "no score" not in client.get(f"/runs/rtx3090_kto/{KTO}/").content.decode()


def test_a_kto_run_whose_early_kl_is_zero_says_so(client, ws):
    run = run_dir(ws, "kto", "20251103_100000")
    lines = [
        {"step": s, "loss": 0.5 - s / 1000, "rewards/margins": s / 20, "kl": 0.0 if s < 30 else 1.0}
        for s in range(10, 61, 10)
    ]
    wb.write_log(run, lines, "20251103_100100")
    for step in (20, 40, 60):
        wb.add_checkpoint(run, step, max_steps=60)
    age(run, 7200)
    page = text(client.get(f"/runs/rtx3090_kto/{run.name}/").content.decode())
    assert (
        "1 of 3 checkpoints has kl at or below 0 (TRL clamps it at 0), where rewards/margins ÷ "
        "kl has no value, so it has no score."
    ) in page


def test_the_run_list_and_the_run_page_count_checkpoints_alike(client, ws):
    listed = client.get("/runs/").content.decode()
    row = listed[listed.index(f'href="/runs/rtx3090_kto/{KTO}/"') :]
    cell = row[row.index('<td class="num c-ckpts">') :]
    assert text(cell[: cell.index("</td>")]) == "4 + final"
    page = text(client.get(f"/runs/rtx3090_kto/{KTO}/").content.decode())
    assert "in 4 checkpoints + final" in page
    data = json.loads(client.get(f"/api/runs/rtx3090_kto/{KTO}/").content)
    assert data["checkpoint_count"] == 4 and data["has_final_model"]
    assert data["checkpoints_total"] == 5  # the table's rows: the final model too


def test_an_mlx_runs_kept_best_copy_counts_on_every_page(client, use_workspace):
    wb.make_mlx_trainer(use_workspace, [(datetime(2025, 11, 3, 9, 0, 0), 100, True)])
    age(use_workspace / "Trainers", 7200)
    run = "/runs/mistral_lora_mac/20251103_090100/"
    rows = json.loads(client.get("/api" + run).content)["checkpoints"]
    assert [c["name"] for c in rows][:2] == ["final_model", "best_checkpoint"]
    listed = client.get("/runs/").content.decode()
    cell = listed[listed.index('<td class="num c-ckpts">') :]
    assert text(cell[: cell.index("</td>")]) == f"{len(rows) - 1} + final"
    assert f"in {len(rows) - 1} checkpoints + final" in text(client.get(run).content.decode())


def test_durations_rates_and_learning_rates_have_their_units(client, ws):
    final = text(client.get(f"/runs/rtx3090_kto/{KTO}/final_model/").content.decode())
    assert "train_runtime 50m 0s" in final  # 100 steps at 30 s
    assert "learning_rate 0 " in final
    first = text(client.get(f"/runs/rtx3090_kto/{KTO}/checkpoint-25/").content.decode())
    assert re.search(r"learning_rate \d\.\d+e-\d ", first), first
    page = text(client.get(f"/runs/rtx3090_kto/{KTO}/").content.decode())
    assert "Learning rate 2e-4" in page  # the run's own, from its lineage


def test_dpo_rates_and_shares(client, use_workspace):
    run = wb.make_run(
        use_workspace, "dpo", started("20251104_100000"), max_steps=50, save_every=25, eval_every=25
    )
    age(run, 7200)
    page = text(client.get(f"/runs/rtx3090_dpo/{run.name}/checkpoint-25/").content.decode())
    assert "eval_samples_per_second 1.705 samples/s" in page
    assert "eval_runtime 58.6s" in page
    assert re.search(r"rewards/accuracies \d+\.\d% ", page), page
    table = text(client.get(f"/runs/rtx3090_dpo/{run.name}/?col=all").content.decode())
    assert re.search(r"\d+\.\d%", table)


def test_the_checkpoint_pages_values_sit_in_a_compact_table_beside_their_labels(client, ws):
    page = client.get(f"/runs/rtx3090_kto/{KTO}/checkpoint-50/").content.decode()
    metrics = page[
        page.index("<h2>Metrics</h2>") : page.index("</table>", page.index("<h2>Metrics"))
    ]
    assert '<table class="kv">' in metrics
    names = re.findall(r"<tr><th>([^<]+)</th>", metrics)
    # The table's columns in its order first, bookkeeping after them.
    assert names[:3] == ["loss", "rewards/margins", "kl"] and names[-2:] == [
        "epoch",
        "interval_time",
    ]
    assert "interval_time" in names and "Adapter" in page


def test_an_mlx_checkpoint_is_shown_as_the_npz_it_is(client, use_workspace):
    wb.make_mlx_trainer(use_workspace, [(datetime(2025, 11, 3, 9, 0, 0), 100, True)])
    age(use_workspace / "Trainers", 7200)
    url = "/runs/mistral_lora_mac/20251103_090100/checkpoint-60/"
    page = client.get(url).content.decode()
    words = prose(page)
    assert "adapter_config.json in this folder" not in words and "<h2>Adapter</h2>" not in page
    assert "A checkpoint of the MLX trainer: a NumPy archive (.npz) of the LoRA weights" in words
    assert "the LoRA settings are the run's (r 16, alpha 32, from its training report)" in words
    best = prose(
        client.get("/runs/mistral_lora_mac/20251103_090100/best_checkpoint/").content.decode()
    )
    assert "The MLX trainer's copy of its best checkpoint (the save with the lowest" in best
    assert "global_step 60" in text(page)
    assert re.search(r"val_loss_history 3 values: [\d.]+, ", text(page))
    data = json.loads(client.get("/api" + url).content)
    assert data["npz_state"]["global_step"] == 60 and data["adapter"] is None
    final = text(client.get("/runs/mistral_lora_mac/20251103_090100/final_model/").content.decode())
    assert "The final LoRA adapter the MLX trainer saved" in final
    later = json.loads(
        client.get("/api/runs/mistral_lora_mac/20251103_090100/checkpoint-80/").content
    )
    assert later["npz_state"]["global_step"] == 80


def test_the_trainers_choice_is_said_once_and_by_its_own_name(client, use_workspace):
    wb.make_mlx_trainer(use_workspace, [(datetime(2025, 11, 3, 9, 0, 0), 100, True)])
    age(use_workspace / "Trainers", 7200)
    page = prose(client.get("/runs/mistral_lora_mac/20251103_090100/").content.decode())
    assert "chosen by the trainer (its best_checkpoint.npz)" in page
    assert "best_model_checkpoint" not in page and "names best_checkpoint as the best" not in page
