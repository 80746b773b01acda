"""Real training outputs, read right: shapes copied from files trainers wrote, in public repos.

Each test builds its workspace from code and copies in only the few `log_history` entries it
needs, named with where they came from.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from discovery.ranking import RankRequest
from discovery.runs import Workspace, detail, get_run, list_runs, list_trainers
from sampledata import runs as wb

from .conftest import age, run_dir, started, upstream_file

pytestmark = pytest.mark.django_db

# tasfiahmrinmoyee/Gemma3-1B-Instruct-outputs, checkpoint-3765/trainer_state.json: an SFT run
# (eval every 200, logging every 50) whose last step holds only the final eval line.
GEMMA_TAIL = [
    {
        "epoch": 2.8685258964143427,
        "eval_loss": 0.7333216071128845,
        "eval_runtime": 232.9,
        "eval_samples_per_second": 10.776,
        "eval_steps_per_second": 2.696,
        "step": 3600,
    },  # noqa: E501
    {
        "epoch": 2.908366533864542,
        "grad_norm": 0.7273030877113342,
        "learning_rate": 6.350944429236244e-06,
        "loss": 0.41443599700927736,
        "step": 3650,
    },  # noqa: E501
    {
        "epoch": 2.948207171314741,
        "grad_norm": 0.4570218622684479,
        "learning_rate": 3.6134683821516567e-06,
        "loss": 0.40657562255859375,
        "step": 3700,
    },  # noqa: E501
    {
        "epoch": 2.9880478087649402,
        "grad_norm": 0.5200433731079102,
        "learning_rate": 8.759923350670682e-07,
        "loss": 0.4385948944091797,
        "step": 3750,
    },  # noqa: E501
    {
        "epoch": 3.0,
        "eval_loss": 0.7326762080192566,
        "eval_runtime": 232.6396,
        "eval_samples_per_second": 10.789,
        "eval_steps_per_second": 2.699,
        "step": 3765,
    },  # noqa: E501
]
# chandlerzuo/rlhf_recsys, outputs/trainer_state.json: an ORPO run (LLaMA-Factory) whose end-of-
# training summary sits at step 336, six steps after its last training line.
ORPO_TAIL = [
    {
        "epoch": 2.8444444444444446,
        "grad_norm": 2.8045313358306885,
        "learning_rate": 3.4548802869627806e-08,
        "loss": 0.1297,
        "odds_ratio_loss": 1.2654706239700317,
        "rewards/accuracies": 0.762499988079071,
        "rewards/chosen": -0.00798664428293705,
        "rewards/margins": 0.0034009453374892473,
        "rewards/rejected": -0.011387591250240803,
        "sft_loss": 0.00312095507979393,
        "step": 320,
    },  # noqa: E501
    {
        "epoch": 2.9333333333333336,
        "grad_norm": 4.451015949249268,
        "learning_rate": 4.868076312512515e-09,
        "loss": 0.1345,
        "odds_ratio_loss": 1.324920415878296,
        "rewards/accuracies": 0.7250000238418579,
        "rewards/chosen": -0.007201936095952988,
        "rewards/margins": 0.002490302547812462,
        "rewards/rejected": -0.00969223864376545,
        "sft_loss": 0.0019686357118189335,
        "step": 330,
    },  # noqa: E501
    {
        "epoch": 2.986666666666667,
        "step": 336,
        "total_flos": 1.034399076235346e17,
        "train_loss": 0.196971476432823,
        "train_runtime": 789.838,
        "train_samples_per_second": 3.418,
        "train_steps_per_second": 0.425,
    },  # noqa: E501
]
# samyakshrestha/grpo-verified-reasoner, outputs/checkpoint-60/trainer_state.json: Unsloth, HF's
# own layout, logging every step, max_steps 60; no JSONL log at all.
SAMYAK_TAIL = [
    {
        "epoch": 4.48,
        "grad_norm": 0.3837643265724182,
        "learning_rate": 1.0909090909090909e-05,
        "loss": 0.0515,
        "step": 58,
    },  # noqa: E501
    {
        "epoch": 4.5600000000000005,
        "grad_norm": 0.4567199945449829,
        "learning_rate": 7.272727272727272e-06,
        "loss": 0.0632,
        "step": 59,
    },  # noqa: E501
    {
        "epoch": 4.64,
        "grad_norm": 0.51225745677948,
        "learning_rate": 3.636363636363636e-06,
        "loss": 0.0822,
        "step": 60,
    },  # noqa: E501
]
# vuanh259/K4-Track3-Day22-...-DPO-ORPO-Alignment, adapters/dpo/trainer_state.json: TRL DPO
# with eval lines every 25 steps. Its key set, with margins set here to disagree the way the
# run in the issue did (training margins peak early, eval margins late).
DPO_TRAIN = {
    "entropy": 1.41,
    "grad_norm": 5.29,
    "learning_rate": 2.5e-07,
    "logits/chosen": -1.99,
    "logits/rejected": -1.84,
    "logps/chosen": -318.3,
    "logps/rejected": -307.7,
    "loss": 0.66,
    "mean_token_accuracy": 0.64,
    "num_tokens": 503253.0,
    "rewards/accuracies": 0.675,
    "rewards/chosen": 0.37,
    "rewards/rejected": 0.31,
}  # noqa: E501
DPO_EVAL = {
    "eval_entropy": 1.51,
    "eval_logits/chosen": -2.15,
    "eval_logits/rejected": -2.15,
    "eval_logps/chosen": -387.8,
    "eval_logps/rejected": -327.0,
    "eval_loss": 0.656,
    "eval_mean_token_accuracy": 0.62,
    "eval_num_tokens": 557774.0,
    "eval_rewards/accuracies": 0.66,
    "eval_rewards/chosen": 0.397,
    "eval_rewards/rejected": 0.315,
    "eval_runtime": 58.6,
    "eval_samples_per_second": 1.705,
    "eval_steps_per_second": 1.705,
}  # noqa: E501


def hf_checkpoint(folder: Path, step: int, history: list[dict], **state: object) -> Path:
    """`checkpoint-N/` as the HF Trainer writes it, with its trainer_state.json."""
    ckpt = folder / f"checkpoint-{step}"
    wb.write_json(
        ckpt / "trainer_state.json",
        {
            "best_global_step": None,
            "best_metric": None,
            "best_model_checkpoint": None,
            "global_step": step,
            "log_history": [e for e in history if e["step"] <= step],
            "max_steps": step,
            **state,
        },
    )
    wb.write_json(ckpt / "adapter_config.json", wb.adapter_config("unsloth/gemma-3-1b-it"))
    return ckpt


@pytest.fixture
def run_dirs(tmp_path: Path, settings) -> Path:
    """A folder outside the workspace, given in TUNER_RUN_DIRS."""
    folder = (tmp_path / "kaggle").resolve()
    folder.mkdir()
    settings.TUNER_RUN_DIRS = [folder]
    return folder


def ws_with(workspace: Path, *dirs: Path) -> Workspace:
    return Workspace.at(workspace, run_dirs=dirs)


def test_an_eval_only_last_step_keeps_the_training_loss_from_its_line(workspace, run_dirs):
    out = run_dirs / "outputs"
    hf_checkpoint(out, 3600, GEMMA_TAIL, max_steps=3765)
    hf_checkpoint(
        out,
        3765,
        GEMMA_TAIL,
        best_global_step=3765,
        best_model_checkpoint="/kaggle/working/outputs/checkpoint-3765",
    )
    (run,) = list_runs(ws_with(workspace, out))
    assert (run.trainer.id, run.name, run.type, run.status) == (
        "outputs",
        "outputs",
        "sft",
        "completed",  # global_step reached max_steps: HF's own layout has no final_model/
    )
    d = detail(run)
    last = next(c for c in d.checkpoints if c.name == "checkpoint-3765")
    assert last.metrics["loss"] == 0.4385948944091797 and last.metric_steps["loss"] == 3750
    assert last.metrics["eval_loss"] == 0.7326762080192566 and "eval_loss" not in last.metric_steps
    # The trainer's own best, named by a Kaggle path.
    assert (d.ranking.rule, d.ranking.best) == ("trainer", "checkpoint-3765")
    assert d.ranking.metric == "eval_loss"


def test_a_summary_only_last_step_keeps_the_margins_and_ranks_by_them(workspace, run_dirs):
    run = run_dirs / "orpo"
    hf_checkpoint(run, 330, ORPO_TAIL, max_steps=336)
    wb.write_json(
        run / "trainer_state.json", {"global_step": 336, "max_steps": 336, "log_history": ORPO_TAIL}
    )
    (found,) = list_runs(ws_with(workspace, run))
    assert found.type == "orpo"  # from odds_ratio_loss: no folder name says it
    d = detail(found)
    assert (d.ranking.rule, d.ranking.best) == ("rewards/margins", "checkpoint-330")
    assert d.step == 336
    d2 = detail(found, ranking=RankRequest("rewards/margins"))
    assert d2.best.name == "checkpoint-330"


def test_the_orpo_summary_step_is_a_checkpoint_with_inherited_margins(use_workspace, client):
    run = run_dir(use_workspace, "orpo", "20251101_100000")
    lines = [*({**e, "timestamp": ""} for e in ORPO_TAIL)]
    wb.write_log(run, lines, "20251101_100100")
    wb.add_checkpoint(run, 320)
    wb.add_checkpoint(run, 336)
    data = json.loads(client.get(f"/api/runs/rtx3090_orpo/{run.name}/").content)
    rows = {c["name"]: c for c in data["checkpoints"]}
    assert rows["checkpoint-336"]["metrics"]["rewards/margins"] == 0.002490302547812462
    assert rows["checkpoint-336"]["metric_steps"]["rewards/margins"] == 330
    assert rows["checkpoint-336"]["metrics"]["train_runtime"] == 789.838
    assert rows["checkpoint-336"]["metrics_step"] == 336
    assert data["best_checkpoint"]["name"] == "checkpoint-320"  # 0.0034 beats 0.0025
    assert client.get(f"/runs/rtx3090_orpo/{run.name}/?rank=rewards/margins").status_code == 200
    html = client.get(f"/runs/rtx3090_orpo/{run.name}/").content.decode()
    assert "@330" in html  # the table says where an inherited value comes from


def test_dpo_ranks_by_eval_margins_when_they_disagree_with_training_margins(workspace):
    run = run_dir(workspace, "dpo", "20251101_100000")
    lines = []
    for step in range(5, 1001, 5):
        train_margin = 0.5 - abs(step - 500) / 1000  # peaks at 500
        lines.append({"step": step, **DPO_TRAIN, "rewards/margins": train_margin})
        if step % 100 == 0:
            eval_margin = step / 10000  # climbs to 1000
            lines.append({"step": step, **DPO_EVAL, "eval_rewards/margins": eval_margin})
    wb.write_log(run, lines, "20251101_100100")
    for step in range(100, 1001, 100):
        wb.add_checkpoint(run, step)
    d = detail(get_run(Workspace.at(workspace), "rtx3090_dpo", run.name))
    assert (d.ranking.rule, d.ranking.best) == ("eval_rewards/margins", "checkpoint-1000")


def test_kto_with_kl_always_zero_ranks_by_the_margins(workspace):
    # ContextualAI/HALOs#24 and huggingface/trl#1447 show KTO logging 'kl': 0.0 throughout.
    run = run_dir(workspace, "kto", "20251101_100000")
    margins = {25: 0.4, 50: 0.93, 75: 0.7}
    wb.write_log(
        run,
        [{"step": s, "loss": 0.3, "kl": 0.0, "rewards/margins": m} for s, m in margins.items()],
        "20251101_100100",
    )
    for step in margins:
        wb.add_checkpoint(run, step)
    d = detail(get_run(Workspace.at(workspace), "rtx3090_kto", run.name))
    assert (d.ranking.rule, d.ranking.best) == ("rewards/margins", "checkpoint-50")


def test_the_kto_ratio_ignores_checkpoints_whose_kl_is_still_near_zero(use_workspace, client):
    run = run_dir(use_workspace, "kto", "20251101_100000")
    # Early in training kl is near 0: 0.05 / 0.001 = 50 would "win" without the guard.
    values = {25: (0.05, 0.001), 50: (2.0, 0.5), 75: (3.0, 0.6), 100: (3.1, 0.9)}
    wb.write_log(
        run,
        [{"step": s, "loss": 0.3, "rewards/margins": m, "kl": k} for s, (m, k) in values.items()],
        "20251101_100100",
    )
    for step in values:
        wb.add_checkpoint(run, step)
    d = detail(get_run(Workspace.at(use_workspace), "rtx3090_kto", run.name))
    assert (d.ranking.rule, d.ranking.best) == ("margin/kl", "checkpoint-75")
    assert d.ranking.scores[0] is None
    html = client.get(f"/runs/rtx3090_kto/{run.name}/").content.decode()
    assert "1 checkpoint not scored: kl below a tenth" in html


def test_a_run_with_only_trainer_state_gets_metrics_curves_and_a_rank(client, run_dirs):
    out = run_dirs / "outputs"
    hf_checkpoint(out, 60, SAMYAK_TAIL)
    data = json.loads(client.get("/api/runs/kaggle/outputs/").content)
    assert data["type"] == "sft" and data["status"] == "completed"
    assert data["checkpoints"][0]["metrics"]["loss"] == 0.0822
    assert data["best_checkpoint"]["name"] == "checkpoint-60"
    series = json.loads(client.get("/api/runs/kaggle/outputs/metrics/").content)
    assert series["steps"] == [58, 59, 60] and series["series"]["loss"][-1] == 0.0822
    assert "<svg" in client.get("/runs/kaggle/outputs/").content.decode()


def test_the_state_fills_in_what_an_upstream_callback_dropped_off_its_grid(workspace):
    # The upstream SFT callback writes only steps divisible by logging_steps: an eval at 25
    # and the summary at 33 never reach the log, but trainer_state.json has them.
    run = run_dir(workspace, "sft", "20251101_100000")
    wb.write_log(run, [{"step": s, "loss": 1 / s} for s in (10, 20, 30)], "20251101_100100")
    history = [
        *({"step": s, "loss": 1 / s} for s in (10, 20, 30)),
        {"step": 25, "eval_loss": 0.9},
        {"step": 33, "train_runtime": 12.5, "train_loss": 0.1},
    ]
    wb.add_checkpoint(run, 30, log_history=history, max_steps=40)
    d = detail(get_run(Workspace.at(workspace), "rtx3090_sft", run.name))
    ckpt = d.checkpoints[0]
    assert ckpt.metrics["eval_loss"] == 0.9 and ckpt.metric_steps == {"eval_loss": 25}
    # An evaluation at 25 is not one of checkpoint-30: the training loss ranks it.
    assert d.ranking.rule == "loss"
    assert "evaluations ran only at step 25" in d.ranking.notes[0]


def test_hfs_own_layout_inside_a_trainer_output_folder_is_a_run(workspace):
    run = wb.output_dir(workspace, "sft") / "20251101_100000"
    hf_checkpoint(run, 60, SAMYAK_TAIL, max_steps=120)
    (found,) = list_runs(Workspace.at(workspace))
    assert found.checkpoint_steps == (60,) and found.checkpoints_dir == run
    assert detail(found).checkpoints[0].path == run / "checkpoint-60"


def test_run_dirs_are_trainers_confined_to_themselves(workspace, tmp_path, client, run_dirs):
    one = run_dirs / "20251101_100000"
    hf_checkpoint(one, 60, SAMYAK_TAIL)
    secret = tmp_path / "secret"
    secret.mkdir()
    hf_checkpoint(secret, 99, SAMYAK_TAIL)
    (run_dirs / "20251102_100000").symlink_to(secret)  # a run folder that leads out
    (one / "checkpoint-99").symlink_to(secret / "checkpoint-99")  # a checkpoint that does
    other = (tmp_path / "elsewhere" / "kaggle").resolve()
    hf_checkpoint(other / "outputs", 60, SAMYAK_TAIL)
    ws = ws_with(workspace, run_dirs, other)
    assert [t.id for t in list_trainers(ws)] == ["kaggle", "kaggle-2"]  # named, told apart
    runs = list_runs(ws)
    assert sorted(r.id for r in runs) == ["kaggle-2/outputs", "kaggle/20251101_100000"]
    assert runs[0].checkpoint_steps == (60,) or runs[1].checkpoint_steps == (60,)
    assert all(99 not in r.checkpoint_steps for r in runs)
    assert client.get("/runs/kaggle/20251102_100000/").status_code == 404
    assert client.get("/api/runs/kaggle/20251101_100000/checkpoint-99/").status_code == 404


def test_a_just_started_run_is_listed_training_with_its_log(client, use_workspace):
    run = run_dir(use_workspace, "kto", "20251101_100000")
    wb.write_log(run, [{"step": s, "loss": 0.7, "kl": 0.1} for s in range(1, 11)], "20251101_1")
    data = json.loads(client.get("/api/runs/").content)
    assert [(r["run"], r["status"]) for r in data["runs"]] == [(run.name, "running")]
    page = client.get(f"/runs/rtx3090_kto/{run.name}/").content.decode()
    assert "No checkpoint has been saved yet" in page and "<svg" in page
    assert (
        run.name in client.get("/").content.decode().split("Training now")[1].split("</section>")[0]
    )


def test_the_notebook_lineage_shape_fills_the_header(workspace):
    run = wb.make_run(workspace, "kto", started("20251101_100000"))
    # ProfSynapse/Toolset-Training's notebooks write base_model.name and lora_config.
    wb.write_json(
        run / "training_lineage.json",
        {
            "training_method": "KTO",
            "base_model": {"name": "unsloth/mistral-7b-v0.3-bnb-4bit", "quantization": "4-bit"},
            "lora_config": {"r": 64, "alpha": 128, "dropout": 0.0},
            "training_config": {"learning_rate": 2e-7, "batch_size": 2},
            "training_results": {"final_loss": 0.12, "training_duration_minutes": 90},
        },
    )
    d = detail(get_run(Workspace.at(workspace), "rtx3090_kto", run.name))
    h = d.header
    assert (h.base_model, h.lora_rank, h.lora_alpha) == (
        "unsloth/mistral-7b-v0.3-bnb-4bit",
        64,
        128,
    )
    assert (h.learning_rate, h.batch_size, h.final_loss) == (2e-7, 2, 0.12)
    assert h.training_seconds == 5400


def test_a_plain_upstream_checkout_shows_its_real_mlx_log(workspace):
    real = upstream_file("Trainers", "mistral_lora_mac", "test_logs_minimal")
    folder = workspace / "Trainers" / "mistral_lora_mac" / "test_logs_minimal"
    shutil.copytree(real, folder)
    # main.py creates the output folders at start, before a single step.
    (workspace / "Trainers" / "mistral_lora_mac" / "test_outputs_minimal" / "final_model").mkdir(
        parents=True
    )
    runs = list_runs(Workspace.at(workspace))
    assert [r.name for r in runs] == [
        "20251114_085132-test_minimal",
        "20251114_084939-test_minimal",  # stopped before its first step
        "20251114_084629-test_minimal",
    ]
    assert all(r.status == "stopped" and not r.has_final_model for r in runs)


def test_types_come_from_logged_metrics_where_no_folder_says(workspace, run_dirs):
    # srinath-manda/IITD_Feb26_AAIPL, checkpoint-100: TRL GRPO with beta 0 logs no kl.
    grpo = [
        {"step": s, "loss": 0.0007, "reward": r, "reward_std": 4.9}
        for s, r in ((80, 4.6875), (90, -8.3375))
    ]  # noqa: E501
    hf_checkpoint(run_dirs / "grpo", 90, grpo, max_steps=500)
    (run,) = list_runs(ws_with(workspace, run_dirs / "grpo"))
    assert run.type == "grpo" and run.status in {"running", "stopped"}
    d = detail(run)
    assert d.ranking.rule == "reward"


def test_bookkeeping_is_no_column_and_runtimes_read_as_durations(client, use_workspace):
    run = run_dir(use_workspace, "sft", "20251101_100000")
    wb.write_log(
        run,
        [
            {"step": 10, "timestamp": "", "interval_time": 31.2, "loss": 0.9, "epoch": 0.5},
            {"step": 20, "loss": 0.8, "epoch": 1.0, "train_runtime": 3725.0, "total_flos": 1e17},
        ],
        "20251101_100100",
    )
    wb.add_checkpoint(run, 20)
    page = client.get(f"/runs/rtx3090_sft/{run.name}/").content.decode()
    table = page[page.index('<table class="checkpoints">') :]
    table = table[: table.index("</table>")]
    for bookkeeping in ("interval_time", "epoch", "total_flos", "train_runtime"):
        assert f">{bookkeeping}<" not in table
    ckpt = client.get(f"/runs/rtx3090_sft/{run.name}/checkpoint-20/").content.decode()
    assert "1h 2m 5s" in ckpt and "total_flos" in ckpt  # on the checkpoint page, as durations


@pytest.mark.parametrize("value", [math.inf, 10**401])
def test_a_metric_no_float_holds_is_missing_not_a_crash(client, use_workspace, value):
    run = run_dir(use_workspace, "sft", "20251101_100000")
    text = (
        json.dumps({"step": 10, "loss": value})
        if value != math.inf
        else '{"step": 10, "loss": Infinity}'
    )
    wb.write_log(run, [text], "20251101_100100")
    wb.add_checkpoint(run, 10)
    assert client.get(f"/runs/rtx3090_sft/{run.name}/").status_code == 200
    assert client.get("/api/runs/").status_code == 200


def test_a_finished_run_that_kept_no_checkpoint_says_so_not_that_none_is_saved_yet(
    client, use_workspace, run_dirs
):
    # chandlerzuo's outputs/ as published: the final trainer_state.json, no checkpoint folder.
    run = run_dirs / "orpo"
    wb.write_json(
        run / "trainer_state.json", {"global_step": 336, "max_steps": 336, "log_history": ORPO_TAIL}
    )
    # Its adapter_config.json sits at the top, without the weights beside it.
    wb.write_json(run / "adapter_config.json", wb.adapter_config("THUDM/glm-4-9b-chat"))
    data = json.loads(client.get("/api/runs/kaggle/orpo/").content)
    assert (data["status"], data["checkpoint_count"]) == ("completed", 0)
    assert data["base_model"] == "THUDM/glm-4-9b-chat"
    page = client.get("/runs/kaggle/orpo/").content.decode()
    assert "No checkpoint has been saved yet" not in page
    assert "No checkpoint or final model is left in this run" in page
    assert "trainer_state.json" in page


# harryc295/soup-dpo-takehome, results/trainer_state.json: a run-level state that stops at step
# 75 of 100 with no closing summary (a checkpoint's state copied up, or save_state() mid-run).
HARRY_TAIL = [
    {"epoch": 1.48, "loss": 0.2051, "rewards/margins": 3.8113, "step": 74},
    {"epoch": 1.5, "loss": 0.1940, "rewards/margins": 3.9995, "step": 75},
]


@pytest.mark.parametrize(
    ("summary", "status"),
    [
        (None, "stopped"),
        # Early stopping: train() returns before max_steps and logs its summary.
        ({"step": 75, "train_runtime": 812.4, "train_loss": 0.41}, "completed"),
    ],
)
def test_a_run_level_state_short_of_max_steps_is_completed_only_with_its_summary(
    client, use_workspace, run_dirs, summary, status
):
    run = run_dirs / "dpo"
    history = HARRY_TAIL + ([summary] if summary else [])
    wb.write_json(
        run / "trainer_state.json", {"global_step": 75, "max_steps": 100, "log_history": history}
    )
    age(run, 7200)
    data = json.loads(client.get("/api/runs/kaggle/dpo/").content)
    assert (data["type"], data["status"], data["last_step"]) == ("dpo", status, 75)
    assert data["max_steps"] == 100
    page = client.get("/runs/kaggle/dpo/").content.decode()
    # Nothing to resume from, and no checkpoint to weigh.
    assert "resume it from its newest checkpoint" not in page and "On disk" not in page
    # Its last values are on the page, not only under the chart's hover; no ranking to choose.
    assert "<strong>Last logged</strong>, at step 75" in page
    assert "<code>rewards/margins</code> 3.999" in page and 'name="rank"' not in page


def test_a_state_fetched_as_a_git_lfs_pointer_is_named_not_called_missing(client, run_dirs):
    # Observer-18/nlp: trainer_state.json as a clone without `git lfs pull` leaves it.
    pointer = (
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:f52014e816ab8f9f5fa7824a62e6a31b2928a2adbccf460f8c89c03b45b36898\n"
        "size 58011\n"
    )
    # The repository has one at its top and one in each checkpoint.
    ckpt = run_dirs / "nlp" / "checkpoint-100"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text(pointer)
    (ckpt.parent / "trainer_state.json").write_text(pointer)
    age(ckpt.parent, 7200)
    data = json.loads(client.get("/api/runs/kaggle/nlp/").content)
    problem = "is a Git LFS pointer, not the file: fetch it with git lfs pull"
    assert data["unread_files"] == [
        {"file": "trainer_state.json", "problem": problem},
        {"file": "checkpoint-100/trainer_state.json", "problem": problem},
    ]
    assert data["status"] == "stopped"  # a pointer says nothing of whether training ended
    page = client.get("/runs/kaggle/nlp/").content.decode()
    assert "<code>checkpoint-100/trainer_state.json</code> is a Git LFS pointer" in page
    assert "no training log or trainer_state.json yet" not in page


def test_a_model_saved_as_adapter_model_bin_at_the_top_is_a_finished_run(client, run_dirs):
    # Older PEFT saves `adapter_model.bin`; the folder is a run with its final model.
    run = run_dirs / "outputs"
    run.mkdir()
    (run / "adapter_model.bin").write_bytes(b"\0" * 64)
    wb.write_json(run / "adapter_config.json", wb.adapter_config("THUDM/glm-4-9b-chat"))
    data = json.loads(client.get("/api/runs/kaggle/outputs/").content)
    assert (data["status"], data["has_final_model"]) == ("completed", True)
