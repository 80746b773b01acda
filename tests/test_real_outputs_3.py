"""Real training outputs, round three: own-step evaluations, the trainer's own metric, sharded
saves, reused output folders, LLaMA-Factory. Shapes copied from files trainers wrote, in public
repositories named beside each; only metadata, trimmed where long."""

from __future__ import annotations

import html
import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from discovery.runs import detail, get_run
from sampledata import runs as wb

from . import test_real_outputs as round_two
from .conftest import age
from .test_real_outputs import DPO_EVAL, DPO_TRAIN, hf_checkpoint, ws_with

pytestmark = pytest.mark.django_db
run_dirs = round_two.run_dirs  # the same TUNER_RUN_DIRS folder fixture


def page(client, url: str) -> str:
    return html.unescape(client.get(url).content.decode())


def cli(*args: str) -> str:
    out = StringIO()
    call_command("discover", *args, stdout=out)
    return out.getvalue()


def dpo_history(eval_every: int, last: int, best_eval_at: int) -> list[dict]:
    """TRL DPO lines every 25 steps and eval lines every `eval_every` (the vuanh259 key sets),
    with the eval margin highest at `best_eval_at`."""
    history: list[dict] = []
    for step in range(25, last + 1, 25):
        history.append({**DPO_TRAIN, "rewards/margins": 0.06 + step / 10000, "step": step})
        if step % eval_every == 0 or step == last:
            margin = 0.9 if step == best_eval_at else 0.1 + step / 10000
            history.append({**DPO_EVAL, "eval_rewards/margins": margin, "step": step})
    return history


def test_a_stale_evaluation_does_not_pick_the_best_checkpoint(use_workspace, client, run_dirs):
    # Evaluated every 375 steps, saved every 500, 1875 steps in all: the best eval margin is
    # logged at 375, before checkpoint-500 existed.
    out = run_dirs / "dpo-out"
    history = dpo_history(375, 1875, best_eval_at=375)
    for step in (500, 1000, 1500, 1875):
        hf_checkpoint(out, step, history, max_steps=1875)
    d = detail(get_run(ws_with(use_workspace, run_dirs), "kaggle", "dpo-out"))
    assert (d.ranking.rule, d.best.name) == ("eval_rewards/margins", "checkpoint-1875")
    scores = dict(zip((c.name for c in d.checkpoints), d.ranking.scores, strict=True))
    assert scores["checkpoint-500"] is None and scores["checkpoint-1000"] is None
    assert d.ranking.unscored_note == (
        "2 of 4 checkpoints have no eval_rewards/margins logged at their own step "
        "(evaluations ran every 375 steps, checkpoints every 500), so they have no score."
    )
    data = json.loads(client.get("/api/runs/kaggle/dpo-out/").content)
    row = next(c for c in data["checkpoints"] if c["name"] == "checkpoint-500")
    # The inherited value stays visible, with its step, never as the score.
    assert row["score"] is None and row["metric_steps"]["eval_rewards/margins"] == 375
    assert row["metrics"]["eval_rewards/margins"] == 0.9
    text = page(client, "/runs/kaggle/dpo-out/")
    assert "@375" in text and "evaluations ran every 375 steps" in text


def test_no_evaluation_at_any_checkpoints_step_falls_through_and_says_why(
    use_workspace, client, run_dirs
):
    out = run_dirs / "dpo-out"
    history = dpo_history(375, 1400, best_eval_at=375)
    for step in (500, 1000):
        hf_checkpoint(out, step, history, max_steps=1400)
    d = detail(get_run(ws_with(use_workspace, run_dirs), "kaggle", "dpo-out"))
    assert (d.ranking.rule, d.best.name) == ("rewards/margins", "checkpoint-1000")
    why = (
        "Ranked by rewards/margins, not eval_rewards/margins: evaluations ran every 375 steps, "
        "checkpoints every 500: none at a checkpoint's step"
    )
    assert d.ranking.notes[0].startswith(why)
    assert why in page(client, "/runs/kaggle/dpo-out/")
    assert json.loads(client.get("/api/runs/kaggle/dpo-out/").content)["rank_notes"][0].startswith(
        why
    )
    assert why in cli("checkpoints", "kaggle/dpo-out")


# evanhuang117/cse5525-research-project, results/baseline.md: a Hugging Face Trainer run that
# picks its best checkpoint by F1 (its "eval metrics" block, as the Trainer logs them).
F1_EVAL = {
    "eval_accuracy": 0.9918,
    "eval_loss": 0.0429,
    "eval_precision": 0.9383,
    "eval_recall": 0.9551,
    "eval_runtime": 12.24,
    "eval_samples_per_second": 265.314,
    "eval_steps_per_second": 33.226,
}


def f1_run(folder: Path) -> Path:
    """Evaluated and saved every 100 steps: eval_loss lowest at 100, F1 highest at 300."""
    history: list[dict] = []
    for step, (f1, loss) in zip(
        (100, 200, 300), ((0.90, 0.03), (0.93, 0.04), (0.9466, 0.05)), strict=True
    ):
        history.append({"epoch": step / 100, "loss": 0.2, "learning_rate": 2e-5, "step": step})
        history.append({**F1_EVAL, "eval_f1": f1, "eval_loss": loss, "step": step})
    out = folder / "ner-out"
    for step in (100, 200, 300):
        hf_checkpoint(
            out,
            step,
            history,
            max_steps=300,
            best_global_step=300 if step == 300 else 100,
            best_metric=0.9466 if step == 300 else 0.90,
            best_model_checkpoint="ner-out/checkpoint-300" if step == 300 else None,
        )
    return out


def test_the_trainers_choice_names_its_own_metric(use_workspace, client, run_dirs):
    f1_run(run_dirs)
    d = detail(get_run(ws_with(use_workspace, run_dirs), "kaggle", "ner-out"))
    r = d.ranking
    assert (r.rule, r.metric, r.order, r.best) == ("trainer", "eval_f1", "max", "checkpoint-300")
    assert r.scores == (0.9, 0.93, 0.9466) and d.best_score == 0.9466
    data = json.loads(client.get("/api/runs/kaggle/ner-out/").content)
    assert data["rank"] == {"rule": "trainer", "metric": "eval_f1", "order": "max"} | {
        k: v for k, v in data["rank"].items() if k not in {"rule", "metric", "order"}
    }
    assert data["best_checkpoint"]["score"] == 0.9466
    assert "the score column shows eval_f1, the metric it chose by, highest wins" in cli(
        "checkpoints", "kaggle/ner-out"
    )
    assert "0.9466 (eval_f1, the trainer's choice)" in cli("runs")


def test_a_config_that_names_the_metric_wins_with_hfs_direction():
    from discovery.logs import History
    from discovery.ranking import trainer_metric

    assert trainer_metric(History(), None, None, "accuracy") == ("eval_accuracy", "max")
    assert trainer_metric(History(), None, None, "eval_loss") == ("eval_loss", "min")
    assert trainer_metric(History(), None, None, "wer_loss", greater=True) == (
        "eval_wer_loss",
        "max",
    )
    assert trainer_metric(History(), 10, 0.5) is None  # nothing logged to match


# jeremieconte/granite-3.1-1b-a400m-instruct, model.safetensors.index.json: a model over
# max_shard_size, saved as numbered shards with their index (weight_map trimmed).
SHARD_INDEX = {
    "metadata": {"total_size": 5338513408},
    "weight_map": {
        "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
        "model.layers.23.self_attn.v_proj.weight": "model-00002-of-00002.safetensors",
    },
}


@pytest.mark.parametrize(
    "files",
    [
        {
            "model-00001-of-00002.safetensors": b"x",
            "model-00002-of-00002.safetensors": b"x",
            "model.safetensors.index.json": json.dumps(SHARD_INDEX).encode(),
        },
        {"pytorch_model.bin": b"x"},
        {
            "pytorch_model-00001-of-00002.bin": b"x",
            "pytorch_model-00002-of-00002.bin": b"x",
            "pytorch_model.bin.index.json": json.dumps(SHARD_INDEX).encode(),
        },
        {"adapters.safetensors": b"x", "adapter_config.json": b"{}"},
        {"adapters.npz": b"x"},
    ],
    ids=["sharded-safetensors", "bin", "sharded-bin", "mlx-adapters", "mlx-npz"],
)
def test_every_save_pretrained_shape_is_a_saved_model(use_workspace, client, run_dirs, files):
    # A full fine-tune: its last checkpoint rotated away, the model saved at the top.
    out = run_dirs / "full-ft"
    out.mkdir()
    for name, data in files.items():
        (out / name).write_bytes(data)
    wb.write_json(
        out / "trainer_state.json",
        {
            "global_step": 60,
            "max_steps": 60,
            "log_history": [{"step": 60, "loss": 0.08, "epoch": 4.64}],
        },
    )
    run = get_run(ws_with(use_workspace, run_dirs), "kaggle", "full-ft")
    assert run is not None and run.final == (out, "top") and run.status == "completed"
    text = page(client, "/runs/kaggle/full-ft/")
    assert "No checkpoint or final model is left" not in text
    size = json.loads(client.get("/api/runs/kaggle/full-ft/").content)["size_on_disk"]
    assert size >= sum(len(d) for d in files.values())


def test_the_rules_sentence_is_discoverys_and_every_view_prints_it_whole(three_runs, client):
    from .conftest import KTO_RUN

    data = json.loads(client.get(f"/api/runs/rtx3090_kto/{KTO_RUN}/").content)
    how = data["rank"]["how"]
    # The KTO ratio's sentence keeps its KL floor (the page's own copy had lost it).
    assert "at least a tenth of the run's median positive kl" in how
    prose = " ".join(re.sub(r"<[^>]+>", "", page(client, f"/runs/rtx3090_kto/{KTO_RUN}/")).split())
    assert f"Best: {data['best_checkpoint']['name']}, {how}." in prose
    assert f"({how})" in cli("checkpoints", f"rtx3090_kto/{KTO_RUN}")


# A TinyBERT WELFake notebook (transformers' Trainer, printed trainer_state.json): its
# stateful_callbacks block, EarlyStoppingCallback's args and attributes.
def early_stopping(patience: int, counter: int) -> dict:
    return {
        "EarlyStoppingCallback": {
            "args": {"early_stopping_patience": patience, "early_stopping_threshold": 0.001},
            "attributes": {"early_stopping_patience_counter": counter},
        },
        "TrainerControl": {
            "args": {
                "should_epoch_stop": False,
                "should_evaluate": False,
                "should_log": False,
                "should_save": True,
                "should_training_stop": True,
            },
            "attributes": {},
        },
    }


def early_run(folder: Path, counter: int) -> Path:
    """Evaluated and saved every 100 of 1000 steps; eval_loss stops improving after 100."""
    history: list[dict] = []
    for step in range(100, 401, 100):
        history.append({"epoch": step / 200, "loss": 0.3, "learning_rate": 1e-4, "step": step})
        history.append({"eval_loss": 0.5 + step / 10000, "eval_runtime": 3.2, "step": step})
    out = folder / "tinybert"
    for step in range(100, 401, 100):
        hf_checkpoint(
            out,
            step,
            history,
            max_steps=1000,
            best_global_step=100,
            best_metric=0.51,
            best_model_checkpoint="results/tinybert/checkpoint-100",
            stateful_callbacks=early_stopping(3, min(counter, step // 100 - 1)),
        )
    age(out, 7200)
    return out


def test_early_stopping_is_a_reason_not_a_crash(use_workspace, client, run_dirs):
    early_run(run_dirs, counter=3)
    data = json.loads(client.get("/api/runs/kaggle/tinybert/").content)
    assert data["status"] == "stopped"
    reason = (
        "It stopped early, on purpose: its EarlyStoppingCallback ended training at step 400 "
        "after 3 evaluations in a row without improvement by eval_loss "
        "(early_stopping_patience 3, threshold 0.001). It did not crash."
    )
    assert data["status_reason"] == reason
    text = page(client, "/runs/kaggle/tinybert/")
    assert reason in text and "If it crashed" not in text
    assert f"note: {reason}" in cli("checkpoints", "kaggle/tinybert")


def test_a_stopped_run_names_everything_that_would_have_finished_it(
    use_workspace, client, run_dirs
):
    early_run(run_dirs, counter=1)  # patience not reached: it stopped some other way
    reason = json.loads(client.get("/api/runs/kaggle/tinybert/").content)["status_reason"]
    assert reason == (
        "It has no final_model/, saved model, training_lineage.json, train_results.json, "
        "trainer_state.json that reached max_steps or holds train()'s closing summary, or "
        "trainer_log.jsonl line at its total_steps, so it did not finish. If it crashed, "
        "resume it from its newest checkpoint."
    )
    assert reason in page(client, "/runs/kaggle/tinybert/")


def test_the_cli_marks_an_inherited_score_with_its_step_as_the_page_does(
    use_workspace, client, run_dirs
):
    # samyakshrestha/grpo-verified-reasoner's SFT keys (logging every 10 here), saved at 25:
    # the checkpoint's loss is the one logged at 20.
    history = [
        {"epoch": s / 100, "grad_norm": 0.4, "learning_rate": 1e-5, "loss": 1 / s, "step": s}
        for s in (10, 20, 30)
    ]
    hf_checkpoint(run_dirs / "sft-out", 25, history, max_steps=30)
    rows = cli("checkpoints", "kaggle/sft-out").splitlines()
    row = next(line for line in rows if line.startswith("* checkpoint-25"))
    assert row.split()[4:8] == ["0.05", "@20", "0.05", "@20"]
    assert "@20" in page(client, "/runs/kaggle/sft-out/")


# aa-n/Qwen3_Lora, adapter_config.json (PEFT), with lora_alpha as the float some writers give.
QWEN3_ADAPTER = {
    "base_model_name_or_path": None,
    "bias": "none",
    "lora_alpha": 32.0,
    "lora_dropout": 0,
    "peft_type": "LORA",
    "r": 8,
    "target_modules": ["up_proj", "o_proj", "gate_proj", "k_proj", "v_proj", "down_proj"],
    "task_type": "CAUSAL_LM",
}
# TRL's model card (README.md), the front matter its trainers write.
TRL_CARD = """---
base_model: Qwen/Qwen3-14B
library_name: transformers
model_name: Qwen3-14B-DPO
tags:
- generated_from_trainer
- trl
- dpo
licence: license
---

# Model Card for Qwen3-14B-DPO
"""


def test_numbers_and_names_come_from_the_newest_file_that_has_them(use_workspace, client, run_dirs):
    out = run_dirs / "dpo-out"
    history = [{**DPO_TRAIN, "step": 25}]
    ckpt = hf_checkpoint(out, 25, history, max_steps=25)
    wb.write_json(ckpt / "adapter_config.json", QWEN3_ADAPTER)
    # The final model's config names neither the rank nor the base model.
    wb.write_json(out / "final_model" / "adapter_config.json", {"peft_type": "LORA"})
    (out / "README.md").write_text(TRL_CARD)
    header = json.loads(client.get("/api/runs/kaggle/dpo-out/").content)["header"]
    assert header["lora"] == {"rank": 8, "alpha": 32}
    assert header["base_model"] == "Qwen/Qwen3-14B"
    assert "Qwen/Qwen3-14B" in cli("runs")
    ckpt_json = json.loads(client.get("/api/runs/kaggle/dpo-out/checkpoint-25/").content)
    assert ckpt_json["adapter"]["lora_alpha"] == 32 and ckpt_json["adapter"]["r"] == 8


# xueh88401-web/qwen2.5-7b-medical-finetune, trainer_log.jsonl: LLaMA-Factory's live log
# (lines 490 to 520 of 6750 steps, the eval line at 500 among them).
LF_LOG = [
    '{"current_steps": 490, "total_steps": 6750, "loss": 1.8271, "lr": 7.244444444444445e-05, "epoch": 0.21777777777777776, "percentage": 7.26, "elapsed_time": "0:25:17", "remaining_time": "5:23:03"}',  # noqa: E501
    '{"current_steps": 500, "total_steps": 6750, "loss": 1.8535, "lr": 7.392592592592593e-05, "epoch": 0.2222222222222222, "percentage": 7.41, "elapsed_time": "0:25:47", "remaining_time": "5:22:29"}',  # noqa: E501
    '{"current_steps": 500, "total_steps": 6750, "eval_loss": 1.6410622596740723, "epoch": 0.2222222222222222, "percentage": 7.41, "elapsed_time": "0:29:27", "remaining_time": "6:08:08"}',  # noqa: E501
    '{"current_steps": 510, "total_steps": 6750, "loss": 1.7715, "lr": 7.540740740740742e-05, "epoch": 0.22666666666666666, "percentage": 7.56, "elapsed_time": "0:30:00", "remaining_time": "6:07:12"}',  # noqa: E501
    '{"current_steps": 520, "total_steps": 6750, "loss": 1.8269, "lr": 7.688888888888889e-05, "epoch": 0.2311111111111111, "percentage": 7.7, "elapsed_time": "0:30:32", "remaining_time": "6:05:54"}',  # noqa: E501
]
# rameyjm7/SFT-Training-LLM, trainer_log.jsonl: a two-GPU run, each line written twice.
LF_TWICE = [
    '{"current_steps": 10, "total_steps": 6566, "loss": 0.8548, "lr": 9.999953642250429e-06, "epoch": 0.010666666666666666, "percentage": 0.15, "elapsed_time": "0:02:12", "remaining_time": "1 day, 0:08:23"}',  # noqa: E501
    '{"current_steps": 10, "total_steps": 6566, "loss": 0.8547, "lr": 9.999953642250429e-06, "epoch": 0.010666666666666666, "percentage": 0.15, "elapsed_time": "0:02:13", "remaining_time": "1 day, 0:19:59"}',  # noqa: E501
    '{"current_steps": 20, "total_steps": 6566, "loss": 0.7463, "lr": 9.999793394343183e-06, "epoch": 0.021333333333333333, "percentage": 0.3, "elapsed_time": "0:04:43", "remaining_time": "1 day, 1:48:36"}',  # noqa: E501
    '{"current_steps": 20, "total_steps": 6566, "loss": 0.7463, "lr": 9.999793394343183e-06, "epoch": 0.021333333333333333, "percentage": 0.3, "elapsed_time": "0:04:45", "remaining_time": "1 day, 1:58:08"}',  # noqa: E501
]
# Yvonne530/HealthAI-OPPO-2026, trainer_log.jsonl: a finished LoRA run, its closing line last.
LF_DONE = [
    '{"current_steps": 8, "total_steps": 9, "loss": 2.3997, "lr": 1.4644660940672627e-05, "epoch": 2.6956521739130435, "percentage": 88.89, "elapsed_time": "0:05:01", "remaining_time": "0:00:37"}',  # noqa: E501
    '{"current_steps": 9, "total_steps": 9, "loss": 2.3993, "lr": 3.8060233744356633e-06, "epoch": 3.0, "percentage": 100.0, "elapsed_time": "0:05:35", "remaining_time": "0:00:00"}',  # noqa: E501
    '{"current_steps": 9, "total_steps": 9, "epoch": 3.0, "percentage": 100.0, "elapsed_time": "0:05:37", "remaining_time": "0:00:00"}',  # noqa: E501
]
# aa-n/Qwen3_Lora, train_results.json (LLaMA-Factory's save_metrics at the end of training).
LF_RESULTS = {
    "epoch": 2.9965936739659367,
    "num_input_tokens_seen": 24689312,
    "total_flos": 2.0772363998572052e18,
    "train_loss": 0.9732094605763754,
    "train_runtime": 5980.6912,
    "train_samples_per_second": 14.427,
    "train_steps_per_second": 0.128,
}


def lf_folder(folder: Path, lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trainer_log.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_a_llamafactory_log_alone_is_a_live_run_with_progress_and_curves(
    use_workspace, client, run_dirs
):
    out = lf_folder(run_dirs / "train_2025-04-29-14-28-08", LF_LOG[:3])
    data = json.loads(client.get("/api/runs/kaggle/train_2025-04-29-14-28-08/").content)
    assert (data["status"], data["last_step"], data["max_steps"]) == ("running", 500, 6750)
    assert data["progress"] == pytest.approx(500 / 6750)
    metrics = json.loads(client.get("/api/runs/kaggle/train_2025-04-29-14-28-08/metrics/").content)
    assert metrics["steps"] == [490, 500]
    assert metrics["series"]["eval_loss"][1] == pytest.approx(1.6410622596740723)
    assert metrics["series"]["loss"] == [1.8271, 1.8535]
    assert metrics["series"]["remaining_time"][1] == 6 * 3600 + 8 * 60 + 8
    # Read incrementally, as the upstream JSONL: appended lines move it on.
    with (out / "trainer_log.jsonl").open("a") as f:
        f.write("\n".join(LF_LOG[3:]) + "\n")
    again = json.loads(client.get("/api/runs/kaggle/train_2025-04-29-14-28-08/").content)
    assert again["last_step"] == 520 and again["skipped_log_lines"] == 0
    assert "train_2025-04-29-14-28-08" in cli("runs")


def test_a_multi_gpu_llamafactory_log_collapses_its_twice_written_lines(
    use_workspace, client, run_dirs
):
    lf_folder(run_dirs / "sft", LF_TWICE)
    metrics = json.loads(client.get("/api/runs/kaggle/sft/metrics/").content)
    assert metrics["steps"] == [10, 20]
    assert metrics["series"]["remaining_time"][0] == 86400 + 19 * 60 + 59


def test_a_finished_llamafactory_run_reads_its_results_and_arguments(
    use_workspace, client, run_dirs
):
    from .test_yaml_args import QWEN3_ARGS

    out = lf_folder(run_dirs / "lora", LF_DONE)
    wb.write_json(out / "train_results.json", LF_RESULTS)
    wb.write_json(out / "all_results.json", LF_RESULTS)
    (out / "training_args.yaml").write_text(QWEN3_ARGS)
    age(out, 7200)
    data = json.loads(client.get("/api/runs/kaggle/lora/").content)
    assert (data["status"], data["last_step"], data["max_steps"]) == ("completed", 9, 9)
    assert data["header"]["training_seconds"] == pytest.approx(5980.6912)


def test_a_run_folder_that_yields_no_run_says_why(use_workspace, client, tmp_path, settings):
    empty = (tmp_path / "saves").resolve()
    (empty / "Qwen3-14B" / "lora").mkdir(parents=True)
    (empty / "notes.txt").write_text("LLaMA-Factory writes here once training starts\n")
    missing = (tmp_path / "gone").resolve()
    settings.TUNER_RUN_DIRS = [empty, missing]
    text = page(client, "/runs/")
    why = f"{empty}: no training run in it. A run is a folder with checkpoint-N/"
    assert why in text and f"{missing}: it does not exist." in text
    out = cli("runs")
    assert f"note: {why}" in out and f"note: {missing}: it does not exist." in out
    # A folder that gives runs says nothing.
    lf_folder(empty / "Qwen3-14B" / "lora" / "train_1", LF_DONE)
    settings.TUNER_RUN_DIRS = [empty / "Qwen3-14B" / "lora"]
    assert "no training run in it" not in page(client, "/runs/")


def test_a_reused_output_folder_keeps_each_checkpoints_own_run(use_workspace, client, run_dirs):
    # A notebook's outputs/ used twice (samyakshrestha/grpo-verified-reasoner's SFT keys): a
    # first run of 30 steps left checkpoint-30; the second, of 60 steps, saved 20, 40 and 60.
    out = run_dirs / "outputs"
    first = [
        {"epoch": s / 10, "grad_norm": 0.5, "learning_rate": 1e-5, "loss": 2.0 - s / 100, "step": s}
        for s in range(10, 31, 10)
    ]
    second = [
        {"epoch": s / 10, "grad_norm": 0.4, "learning_rate": 1e-5, "loss": 1.0 - s / 100, "step": s}
        for s in range(10, 61, 10)
    ]
    hf_checkpoint(out, 30, first, max_steps=30)
    for step in (20, 40, 60):
        hf_checkpoint(out, step, second, max_steps=60)
    d = detail(get_run(ws_with(use_workspace, run_dirs), "kaggle", "outputs"))
    by_name = {c.name: c for c in d.checkpoints}
    assert by_name["checkpoint-30"].earlier_run and by_name["checkpoint-30"].metrics["loss"] == 1.7
    assert (
        not by_name["checkpoint-40"].earlier_run and by_name["checkpoint-40"].metrics["loss"] == 0.6
    )
    data = json.loads(client.get("/api/runs/kaggle/outputs/").content)
    row = next(c for c in data["checkpoints"] if c["name"] == "checkpoint-30")
    assert row["earlier_run"] is True and row["metrics"]["loss"] == 1.7
    assert "earlier run" in page(client, "/runs/kaggle/outputs/")
    assert "checkpoint-30 (earlier run)" in cli("checkpoints", "kaggle/outputs")


def test_a_reused_folder_with_the_same_length_is_told_by_a_value_at_a_shared_step(
    use_workspace, run_dirs
):
    out = run_dirs / "outputs"
    first = [{"loss": 2.0, "learning_rate": 1e-5, "step": s} for s in (10, 20, 30)]
    second = [{"loss": 1.0, "learning_rate": 1e-5, "step": s} for s in range(10, 61, 10)]
    hf_checkpoint(out, 30, first, max_steps=60, logging_steps=10)
    for step in (40, 60):
        hf_checkpoint(out, step, second, max_steps=60, logging_steps=10)
    d = detail(get_run(ws_with(use_workspace, run_dirs), "kaggle", "outputs"))
    mine = next(c for c in d.checkpoints if c.name == "checkpoint-30")
    assert mine.earlier_run and mine.metrics["loss"] == 2.0
    assert not any(c.earlier_run for c in d.checkpoints if c.name != "checkpoint-30")


def test_a_llamafactory_log_at_its_total_steps_is_a_finished_run(use_workspace, run_dirs):
    lf_folder(run_dirs / "done", LF_DONE)
    lf_folder(run_dirs / "cut", LF_DONE[:1])
    age(run_dirs, 7200)
    ws = ws_with(use_workspace, run_dirs)
    assert get_run(ws, "kaggle", "done").status == "completed"
    assert get_run(ws, "kaggle", "cut").status == "stopped"
