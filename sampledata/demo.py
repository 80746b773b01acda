"""The demo workspace `make run` serves: SFT, KTO and MLX runs, one training while you look."""

from __future__ import annotations

import json
import os
import random
import shutil
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .evaluator import DEMO_TAGS, DEMO_TOOLS, write_evaluation, write_prompt_sets
from .runs import (
    BASE_MODELS,
    adapter_config,
    add_checkpoint,
    add_final_model,
    lineage,
    make_mlx_trainer,
    make_run,
    metric_line,
    output_dir,
    write_json,
    write_log,
)
from .upload import write_upload


def build_demo(root: Path, now: datetime | None = None) -> Path:
    """A small realistic workspace: SFT and KTO runs, one of them training right now.

    Built again on every `make run`: the finished runs keep the start times (so the names) of the
    first build, and results the demo did not write stay, so links, sweeps and evaluations made
    in the demo still find their runs; only the running run starts now."""
    now = now or datetime.now()
    if (root / "Trainers").exists():
        shutil.rmtree(root / "Trainers")
    first = now  # the running run's time; the finished runs count back from the first build's
    now = first_built(root, now)
    old = time.mktime((now - timedelta(days=1)).timetuple())
    specs: list[tuple[str, int, dict[str, Any]]] = [
        ("sft", 9, {"max_steps": 400, "save_every": 50, "eval_every": 50, "seed": 1}),
        ("sft", 6, {"max_steps": 300, "save_every": 50, "seed": 2, "base_model": BASE_MODELS[1]}),
        (
            "sft",
            3,
            {"max_steps": 400, "done": 230, "save_every": 50, "completed": False, "seed": 3},
        ),
        ("kto", 8, {"max_steps": 300, "save_every": 25, "keep": 3, "seed": 4, "lr": 2e-7}),
        (
            "kto",
            5,
            {
                "max_steps": 300,
                "save_every": 25,
                "seed": 5,
                "lr": 2e-7,
                "base_model": BASE_MODELS[2],
            },
        ),
    ]
    made = []
    for run_type, days, kwargs in specs:
        started = (now - timedelta(days=days)).replace(microsecond=0)
        made.append(make_run(root, run_type, started, mtime=old, **kwargs))
    _other_trainers(root, now, old)
    _sweep(root, now, old)
    # The running run: started a few minutes ago, its log written a moment ago.
    make_run(root, "kto", demo_started(first), completed=False, **DEMO_RUNNING)
    mac = make_mlx_trainer(
        root,
        [
            ((now - timedelta(days=4)).replace(microsecond=0), 60, False),
            ((now - timedelta(days=2)).replace(microsecond=0), 120, True),
        ],
    )
    for dirpath, dirs, files in os.walk(mac):
        for n in [*dirs, *files]:
            os.utime(os.path.join(dirpath, n), (old, old))
    write_prompt_sets(root)
    _publish_and_evaluate(root, now, made)
    return root


# Where the demo remembers when it was first built, in the dashboard's own folder of the workspace.
FIRST_BUILT = Path(".tuner", "demo-built")


def first_built(root: Path, now: datetime) -> datetime:
    """When the demo was first built here (now, the first time): what its history counts back
    from."""
    marker = root / FIRST_BUILT
    try:
        then = datetime.fromisoformat(marker.read_text().strip())
    except (OSError, ValueError):
        then = None
    if then is not None and then.tzinfo is None and then <= now:
        return then
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(now.replace(microsecond=0).isoformat() + "\n")
    return now.replace(microsecond=0)


# What the demo's runs published, and the results of evaluating those models as Ollama pulled
# them from the hub (`hf.co/<repo>-GGUF:<quant>`): the chain shows with no server running.
SFT_REPO = "professorsynapse/nexus-tools-sft"
KTO_REPO = "professorsynapse/nexus-tools-kto"


def _publish_and_evaluate(root: Path, now: datetime, made: list[Path]) -> None:
    sft, _, _, kto_old, kto_new = made
    day = timedelta(days=1)
    write_upload(sft / "final_model", SFT_REPO, uploaded_at=now - 8.5 * day)
    # The first KTO model went out from a checkpoint, as a LoRA; a later run replaced it.
    write_upload(
        kto_old / "checkpoints" / "checkpoint-275",
        KTO_REPO,
        save_method="lora",
        uploaded_at=now - 7.5 * day,
    )
    write_upload(kto_new / "final_model", KTO_REPO, uploaded_at=now - 4.5 * day)
    # The SFT model still fumbles folder creation; the KTO ones mostly learned it, and the
    # newer one fixed a search case but broke an archive case.
    evaluations = [
        ("tool_prompts_sft", f"hf.co/{SFT_REPO}-GGUF:Q4_K_M", "tool_prompts", {1, 5, 6, 9}, 6),
        ("tool_prompts_kto_ckpt275", f"hf.co/{KTO_REPO}-GGUF:Q4_K_M", "tool_prompts", {2, 9}, 7),
        ("tool_prompts_kto", f"hf.co/{KTO_REPO}-GGUF:Q4_K_M", "tool_prompts", {3, 9}, 4),
        ("behavior_prompts_kto", f"hf.co/{KTO_REPO}-GGUF:Q8_0", "behavior_prompts", {4}, 3),
        # A stock model from the Ollama library, for reference: it comes from no run.
        ("tool_prompts_mistral", "mistral:7b-instruct", "tool_prompts", {1, 2, 5, 6, 9, 11}, 9),
    ]
    for name, model, prompt_set, failed, days in evaluations:
        count = 12 if prompt_set == "tool_prompts" else 8
        prefix = "tool" if prompt_set == "tool_prompts" else "IH"
        tags = DEMO_TAGS if prefix == "tool" else [["behavior", *t[:1]] for t in DEMO_TAGS]
        cases = [(f"{prefix}_{n:03d}", n not in failed, tags[n % 4]) for n in range(count)]
        when = (now - days * day).replace(microsecond=0)
        tools = {f"{prefix}_{n:03d}": DEMO_TOOLS[n % 4] for n in range(count)}
        write_evaluation(root, name, model, prompt_set, cases, when, tools)


# `make run` follows the running run at a log line (five steps) every 4 s: its log so far was
# written at that pace too, so it started minutes ago and its rate and time left hold.
FOLLOW_SECONDS_PER_STEP = 4.0 / 5
DEMO_RUNNING: dict[str, Any] = {
    "max_steps": 600,
    "done": 170,
    "save_every": 25,
    "seed": 6,
    "lr": 2e-7,
    "seconds_per_step": FOLLOW_SECONDS_PER_STEP,
}


def demo_started(now: datetime) -> datetime:
    seconds = DEMO_RUNNING["done"] * FOLLOW_SECONDS_PER_STEP
    return (now - timedelta(seconds=seconds)).replace(microsecond=0)


def follow_demo(
    root: Path, interval: float = 4.0, log_every: int = 5, stop: threading.Event | None = None
) -> None:
    """Keep the demo's running run training: a log line per interval, checkpoints, then the end;
    or until `stop` is set, between two lines."""
    runs = sorted(p for p in output_dir(root, "kto").iterdir() if not (p / "final_model").exists())
    if not runs:
        return
    run_dir = runs[-1]
    log = sorted((run_dir / "logs").glob("training_2*.jsonl"))[-1]
    step = json.loads(log.read_text().strip().splitlines()[-1])["step"]
    spec = DEMO_RUNNING
    rng = random.Random(spec["seed"] + step)
    base = adapter_config(BASE_MODELS[0])["base_model_name_or_path"]
    stop = stop or threading.Event()
    while step < spec["max_steps"]:
        if stop.wait(interval):
            return
        step += log_every
        line = metric_line("kto", step, spec["max_steps"], rng, spec["lr"])
        line["timestamp"] = datetime.now().isoformat()
        line["interval_time"] = interval
        write_log(run_dir, [line], log.stem.removeprefix("training_"))
        if step % spec["save_every"] == 0:
            add_checkpoint(run_dir, step, base, spec["max_steps"])
    finish_run(run_dir, log, step, spec["max_steps"], spec["lr"], base)


def finish_run(
    run_dir: Path, log: Path, step: int, max_steps: int, lr: float, base_model: str
) -> None:
    """What a KTO trainer writes as it ends: the log's summary line, final model, lineage."""
    started = datetime.strptime(run_dir.name, "%Y%m%d_%H%M%S")
    runtime = round((datetime.now() - started).total_seconds(), 1)
    summary = {"step": step, "timestamp": datetime.now().isoformat(), "train_runtime": runtime}
    write_log(run_dir, [summary], log.stem.removeprefix("training_"))
    add_final_model(run_dir, base_model)
    write_json(
        run_dir / "training_lineage.json",
        lineage("kto", run_dir, base_model, max_steps, lr, runtime),
    )


def _other_trainers(root: Path, now: datetime, old: float) -> None:
    """Runs as other trainers write them: TRL DPO with eval lines (the upstream project's later
    `Trainers/dpo/dpo_output/` layout), and a plain Hugging Face Trainer's own layout
    (`checkpoint-N/` at the run's top, trainer_state.json only, as Unsloth's GRPO notebooks)."""
    started = (now - timedelta(days=7, hours=3)).replace(microsecond=0)
    make_run(
        root, "dpo", started, max_steps=400, save_every=50, eval_every=100, seed=7, lr=5e-7,
        platform="", mtime=old,
    )  # fmt: skip
    started = (now - timedelta(days=2, hours=6)).replace(microsecond=0)
    make_run(
        root, "grpo", started, max_steps=240, save_every=60, seed=8, lr=5e-6, layout="hf",
        platform="", mtime=old,
    )  # fmt: skip


# An SFT sweep over LoRA rank, learning rate and dataset on one base model, evaluated every 50
# steps: what /explore/, the run list's configuration columns and compare's table show.
# (rank, learning rate, dataset, its size, how much worse its held-out loss ends)
SWEEP = (
    (8, 2e-4, "data/sft_toolset.jsonl", 2400, 0.12),
    (16, 2e-4, "data/sft_toolset.jsonl", 2400, 0.06),
    (64, 2e-4, "data/sft_toolset.jsonl", 2400, 0.02),
    (32, 5e-5, "data/sft_toolset.jsonl", 2400, 0.16),
    (32, 1e-4, "data/sft_toolset_v2.jsonl", 4800, 0.0),
    (32, 4e-4, "data/sft_toolset_v2.jsonl", 4800, 0.09),
)


def _sweep(root: Path, now: datetime, old: float) -> None:
    for i, (rank, lr, dataset, examples, worse) in enumerate(SWEEP):
        started = (now - timedelta(days=15 - i, hours=2)).replace(microsecond=0)
        run = make_run(
            root, "sft", started, max_steps=300, save_every=50, eval_every=50, lr=lr, seed=20 + i
        )
        _shift_eval_loss(run, worse)
        lineage_path = run / "training_lineage.json"
        data = json.loads(lineage_path.read_text())
        data["lora"] |= {"rank": rank, "alpha": 2 * rank}
        data["dataset"] |= {"source": dataset, "train_examples": examples}
        write_json(lineage_path, data)
        for adapter in run.glob("**/adapter_config.json"):
            write_json(adapter, adapter_config(BASE_MODELS[0], rank, 2 * rank))
        for dirpath, dirs, files in os.walk(run):
            for n in [*dirs, *files]:
                os.utime(os.path.join(dirpath, n), (old, old), follow_symlinks=False)


def _shift_eval_loss(run: Path, worse: float) -> None:
    """The held-out loss of a worse setting: higher by `worse`, more so as training goes on."""
    for log in (run / "logs").glob("training_2*.jsonl"):
        lines = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
        for line in lines:
            if "eval_loss" in line:
                line["eval_loss"] = round(line["eval_loss"] + worse * (0.5 + line["epoch"]), 4)
        log.write_text("".join(json.dumps(x) + "\n" for x in lines))
