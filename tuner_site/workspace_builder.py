"""Builds training workspaces in the upstream layout, for the demo and for tests."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

BASE_MODELS = (
    "unsloth/mistral-7b-v0.3-bnb-4bit",
    "unsloth/Qwen2.5-7B-Instruct-bnb-4bit",
    "unsloth/llama-3.1-8b-instruct-bnb-4bit",
)


def output_dir(root: Path, run_type: str, platform: str = "rtx3090") -> Path:
    return root / "Trainers" / f"{platform}_{run_type}" / f"{run_type}_output_{platform}"


def write_json(path: Path, data: Any, indent: int | None = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # json, not orjson: trainers write NaN and Infinity, and so must our fixtures.
    path.write_text(json.dumps(data, indent=indent, sort_keys=True))
    return path


def write_log(run_dir: Path, lines: Iterable[dict[str, Any] | str], stamp: str) -> Path:
    """A `logs/training_<stamp>.jsonl` written like upstream's MetricsTableCallback."""
    path = run_dir / "logs" / f"training_{stamp}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        for line in lines:
            f.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return path


def link_latest(run_dir: Path, log: Path) -> None:
    link = run_dir / "logs" / "training_latest.jsonl"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(log.name)


def adapter_config(base_model: str, r: int = 32, alpha: int = 64) -> dict[str, Any]:
    return {
        "base_model_name_or_path": base_model,
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": r,
        "lora_alpha": alpha,
        "lora_dropout": 0.05,
        "bias": "none",
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
        "modules_to_save": None,
        "inference_mode": True,
    }


def add_checkpoint(
    run_dir: Path,
    step: int,
    base_model: str = BASE_MODELS[0],
    max_steps: int | None = None,
    best_model_checkpoint: str | None = None,
    log_history: list[dict[str, Any]] | None = None,
    state: bool = True,
) -> Path:
    ckpt = run_dir / "checkpoints" / f"checkpoint-{step}"
    ckpt.mkdir(parents=True, exist_ok=True)
    write_json(ckpt / "adapter_config.json", adapter_config(base_model))
    (ckpt / "adapter_model.safetensors").write_bytes(b"\0" * 4096)
    if state:
        write_json(
            ckpt / "trainer_state.json",
            {
                "best_metric": None,
                "best_model_checkpoint": best_model_checkpoint,
                "epoch": step / (max_steps or step or 1),
                "global_step": step,
                "max_steps": max_steps or step,
                "log_history": log_history or [],
                "logging_steps": 5,
                "save_steps": 50,
            },
        )
    return ckpt


def add_final_model(run_dir: Path, base_model: str = BASE_MODELS[0]) -> Path:
    final = run_dir / "final_model"
    final.mkdir(parents=True, exist_ok=True)
    write_json(final / "adapter_config.json", adapter_config(base_model))
    (final / "adapter_model.safetensors").write_bytes(b"\0" * 8192)
    write_json(final / "tokenizer_config.json", {"model_max_length": 2048})
    (final / "README.md").write_text(f"# LoRA adapter for {base_model}\n")
    return final


def lineage(run_type: str, run_dir: Path, base_model: str, max_steps: int, lr: float) -> dict:
    return {
        "training_type": run_type.upper(),
        "timestamp": datetime.now().isoformat(),
        "run_directory": f"{run_type}_output_rtx3090/{run_dir.name}",
        "model": {"base_model": base_model, "max_seq_length": 2048, "load_in_4bit": True},
        "lora": {"rank": 32, "alpha": 64, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]},
        "training": {
            "batch_size": 4,
            "gradient_accumulation_steps": 2,
            "effective_batch_size": 8,
            "learning_rate": lr,
            "num_epochs": 2,
            "max_steps": max_steps,
        },
        "dataset": {"source": f"data/{run_type}_toolset.jsonl", "train_examples": 2400},
        "hardware": {
            "platform": "Linux",
            "cuda_available": True,
            "gpu_name": "NVIDIA GeForce RTX 3090",
            "gpu_memory_gb": 24.0,
        },
        "results": {
            "final_step": max_steps,
            "total_epochs": 2.0,
            "training_time_seconds": 33.0 * max_steps,
            "training_time_formatted": _hms(33 * max_steps),
        },
    }


def _hms(seconds: int) -> str:
    return f"{seconds // 3600}h {seconds % 3600 // 60}m {seconds % 60}s"


def metric_line(run_type: str, step: int, max_steps: int, rng: random.Random, lr: float) -> dict:
    """One training log line with plausible, noisy curves for the trainer type."""
    progress = step / max_steps
    line: dict[str, Any] = {
        "step": step,
        "timestamp": "",
        "interval_time": round(rng.uniform(25, 40), 3),
    }
    if run_type == "kto":
        margin = 4.5 * (1 - math.exp(-4 * progress)) + rng.gauss(0, 0.25)
        chosen = margin * 0.4 + rng.gauss(0, 0.1)
        line |= {
            "loss": round(max(0.5 * math.exp(-3 * progress) + rng.gauss(0, 0.02), 0.01), 4),
            "grad_norm": abs(rng.gauss(0.6, 0.2)),
            "learning_rate": lr * (1 - progress),
            "rewards/chosen": chosen,
            "rewards/rejected": chosen - margin,
            "rewards/margins": margin,
            "logps/chosen": -120 + rng.gauss(0, 8),
            "logps/rejected": -300 + rng.gauss(0, 12),
            "kl": max(0.0, 0.5 + 0.8 * progress + rng.gauss(0, 0.05)),
        }
    else:
        line |= {
            "loss": round(1.9 * math.exp(-2.5 * progress) + 0.25 + rng.gauss(0, 0.04), 4),
            "grad_norm": abs(rng.gauss(1.2, 0.3)),
            "learning_rate": lr * (1 - progress),
            "mean_token_accuracy": min(0.99, 0.55 + 0.4 * progress + rng.gauss(0, 0.01)),
        }
    line["epoch"] = round(2 * progress, 4)
    return line


def make_run(
    root: Path,
    run_type: str,
    started: datetime,
    *,
    max_steps: int = 300,
    done: int | None = None,
    log_every: int = 5,
    save_every: int = 50,
    keep: int | None = None,
    completed: bool = True,
    eval_every: int | None = None,
    base_model: str = BASE_MODELS[0],
    lr: float = 2e-4,
    seed: int = 0,
    mtime: float | None = None,
    platform: str = "rtx3090",
) -> Path:
    """A run folder with checkpoints, a log, and (when completed) final model and lineage."""
    rng = random.Random(seed)
    done = max_steps if done is None else done
    run_dir = output_dir(root, run_type, platform) / started.strftime("%Y%m%d_%H%M%S")
    stamp = (started + timedelta(minutes=2)).strftime("%Y%m%d_%H%M%S")
    lines = []
    for step in range(log_every, done + 1, log_every):
        line = metric_line(run_type, step, max_steps, rng, lr)
        line["timestamp"] = (started + timedelta(seconds=30 * step)).isoformat()
        lines.append(line)
        if eval_every and step % eval_every == 0:
            # Held-out loss that bottoms out and climbs again: the model starts to overfit.
            eval_loss = lines[-1].get("loss", 1.0) * 1.05 + 0.9 * (step / max_steps) ** 3
            lines.append({"step": step, "eval_loss": round(eval_loss, 4), "epoch": line["epoch"]})
    if completed and lines:
        lines.append(
            {
                "step": done,
                "timestamp": (started + timedelta(seconds=30 * done + 20)).isoformat(),
                "train_runtime": 30.0 * done,
                "train_loss": sum(x.get("loss", 0) for x in lines) / len(lines),
                "epoch": lines[-1]["epoch"],
            }
        )
    log = write_log(run_dir, lines, stamp)
    link_latest(run_dir, log)
    saves = list(range(save_every, done + 1, save_every))
    if keep:
        saves = saves[-keep:]
    history = [x for x in lines if "loss" in x]
    for step in saves:
        add_checkpoint(
            run_dir,
            step,
            base_model,
            max_steps,
            log_history=[x for x in history if x["step"] <= step][-20:],
        )
    if completed:
        add_final_model(run_dir, base_model)
        write_json(
            run_dir / "training_lineage.json", lineage(run_type, run_dir, base_model, max_steps, lr)
        )
    if mtime is not None:
        for dirpath, dirs, files in os.walk(run_dir):
            for name in [*dirs, *files]:
                os.utime(os.path.join(dirpath, name), (mtime, mtime), follow_symlinks=False)
            os.utime(dirpath, (mtime, mtime))
    return run_dir


DEMO_TAGS = [["search", "memory"], ["create", "folder"], ["search"], ["archive", "memory"]]


def prompt_case(i: int, prefix: str, tags: list[str], tools: list[str]) -> dict[str, Any]:
    return {
        "id": f"{prefix}_{i:03d}",
        "question": f"Case {i}: use the workspace tools to {tags[0]} the notes in project {i}.",
        "tags": tags,
        "expected_tools": tools,
        "system": "<session_context>sessionId: session_demo</session_context>",
        "expected_context": {"session_id": "session_demo", "workspace_id": "ws_demo"},
    }


def write_prompt_sets(root: Path) -> None:
    prompts = root / "Evaluator" / "prompts"
    tags = DEMO_TAGS
    tools = [["searchContent"], ["createFolder"], ["searchContent", "readFile"], ["archiveNote"]]
    write_json(
        prompts / "tool_prompts.json",
        [prompt_case(i, "tool", tags[i % 4], tools[i % 4]) for i in range(12)],
    )
    write_json(
        prompts / "behavior_prompts.json",
        [prompt_case(i, "IH", ["behavior", *tags[i % 4][:1]], tools[i % 4]) for i in range(8)],
    )


def build_demo(root: Path, now: datetime | None = None) -> Path:
    """A small realistic workspace: SFT and KTO runs, one of them training right now."""
    now = now or datetime.now()
    if (root / "Trainers").exists():
        shutil.rmtree(root / "Trainers")
    old = time.mktime((now - timedelta(days=1)).timetuple())
    specs = [
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
    for run_type, days, kwargs in specs:
        started = (now - timedelta(days=days)).replace(microsecond=0)
        make_run(root, run_type, started, mtime=old, **kwargs)
    # The running run: started 90 minutes ago, its log written a moment ago.
    make_run(root, "kto", demo_started(now), completed=False, **DEMO_RUNNING)
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
    # The SFT model still fumbles folder creation; the KTO one mostly learned it.
    fails = {"nexus-tools-sft:q8": {1, 5, 6, 9}, "nexus-tools-kto:q8": {9}}
    for i, (model, failed) in enumerate(fails.items()):
        results = [(f"tool_{n:03d}", n not in failed, DEMO_TAGS[n % 4]) for n in range(12)]
        when = (now - timedelta(days=3 - i)).replace(microsecond=0)
        name = f"tool_prompts_{model.split(':')[0]}"
        write_evaluation(root, name, model, "tool_prompts", results, when)
    return root


DEMO_RUNNING = {"max_steps": 600, "done": 170, "save_every": 25, "seed": 6, "lr": 2e-7}


def demo_started(now: datetime) -> datetime:
    return (now - timedelta(minutes=90)).replace(microsecond=0)


def follow_demo(root: Path, interval: float = 4.0, log_every: int = 5) -> None:
    """Keep the demo's running run training: a log line per interval, checkpoints, then the end."""
    runs = sorted(p for p in output_dir(root, "kto").iterdir() if not (p / "final_model").exists())
    if not runs:
        return
    run_dir = runs[-1]
    log = sorted((run_dir / "logs").glob("training_2*.jsonl"))[-1]
    step = json.loads(log.read_text().strip().splitlines()[-1])["step"]
    spec = DEMO_RUNNING
    rng = random.Random(spec["seed"] + step)
    base = adapter_config(BASE_MODELS[0])["base_model_name_or_path"]
    while step < spec["max_steps"]:
        time.sleep(interval)
        step += log_every
        line = metric_line("kto", step, spec["max_steps"], rng, spec["lr"])
        line["timestamp"] = datetime.now().isoformat()
        write_log(run_dir, [line], log.stem.removeprefix("training_"))
        if step % spec["save_every"] == 0:
            add_checkpoint(run_dir, step, base, spec["max_steps"])
    summary = {"step": step, "timestamp": datetime.now().isoformat(), "train_runtime": 5400.0}
    write_log(run_dir, [summary], log.stem.removeprefix("training_"))
    add_final_model(run_dir, base)
    write_json(
        run_dir / "training_lineage.json",
        lineage("kto", run_dir, base, spec["max_steps"], spec["lr"]),
    )


def _bench_run(args: tuple[str, str, int, int, int, int, int, str, float | None]) -> None:
    root, run_type, i, steps, log_every, save_every, seed, kind, mtime = args
    started = datetime(2025, 1, 1) + timedelta(hours=7 * i + (0 if run_type == "sft" else 3))
    done = steps if kind == "completed" else steps * (3 + seed % 5) // 10
    make_run(
        Path(root),
        run_type,
        started,
        max_steps=steps,
        done=done,
        log_every=log_every,
        save_every=save_every,
        completed=kind == "completed",
        base_model=BASE_MODELS[i % len(BASE_MODELS)],
        lr=2e-4 if run_type == "sft" else 2e-7,
        seed=seed,
        mtime=mtime,
    )


def build_bench(
    root: Path,
    runs_per_type: int,
    checkpoints: int,
    steps: int,
    log_every: int,
    jobs: int = 2,
) -> Path:
    """A large workspace for benchmarks: mostly completed runs, some stopped, a few running."""
    from concurrent.futures import ProcessPoolExecutor

    if (root / "Trainers").exists():
        shutil.rmtree(root / "Trainers")
    save_every = max(steps // checkpoints, 1)
    old = time.time() - 86400
    specs = []
    for run_type in ("sft", "kto"):
        for i in range(runs_per_type):
            seed = i * 2 + (run_type == "kto")
            kind = (
                "running" if i >= runs_per_type - 2 else "stopped" if i % 10 == 3 else "completed"
            )
            mtime = None if kind == "running" else old
            specs.append((str(root), run_type, i, steps, log_every, save_every, seed, kind, mtime))
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(_bench_run, specs, chunksize=8))
    write_prompt_sets(root)
    return root


def mlx_records(
    started: datetime,
    steps: int,
    *,
    epochs: int = 2,
    model: str = "mistralai/Mistral-7B-Instruct-v0.3",
    finished: bool = True,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One run's records as the MLX trainer's structured logger writes them."""
    rng = random.Random(seed)
    t = started

    def rec(level: str, message: str, **extra: Any) -> dict[str, Any]:
        nonlocal t
        t += timedelta(seconds=30)
        return {
            "timestamp": t.isoformat(),
            "level": level,
            "logger": "mlx_finetuning",
            "message": message,
            **extra,
        }

    out = [
        rec("INFO", "=" * 80),
        rec("INFO", "MLX Fine-Tuning System - Logging Initialized"),
        rec("INFO", f"Loading model: {model}"),
        rec("INFO", f"  Total steps: {steps}"),
    ]
    per_epoch = max(steps // epochs, 1)
    for step in range(1, steps + 1):
        loss = 2.2 * math.exp(-3 * step / steps) + 0.3 + rng.gauss(0, 0.03)
        out.append(
            rec(
                "METRICS",
                "Training metrics",
                step=step,
                metrics={"loss": loss, "lr": 5e-5, "step_time": 2.5, "tokens_per_sec": 900.0},
            )
        )
        if step % per_epoch == 0:
            epoch = step // per_epoch
            val = 0.9 + 0.2 * (epoch - epochs / 2) ** 2 / epochs + rng.gauss(0, 0.01)
            out.append(
                rec(
                    "EPOCH_SUMMARY",
                    f"Epoch {epoch} complete",
                    epoch=epoch,
                    metrics={"epoch": epoch, "train_loss": loss, "val_loss": val, "steps": step},
                )
            )
    if finished:
        out.append(rec("INFO", "Training complete"))
    return out


def make_mlx_trainer(
    root: Path,
    runs: list[tuple[datetime, int, bool]],
    name: str = "mistral_lora_mac",
    keep: int = 3,
) -> Path:
    """An MLX trainer folder whose one log holds these runs (start, steps, finished)."""
    folder = root / "Trainers" / name
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    with (folder / "logs" / "training.jsonl").open("a") as f:
        for i, (start, steps, finished) in enumerate(runs):
            records = mlx_records(start, steps, finished=finished, seed=i)
            for r in records:
                f.write(json.dumps(r) + "\n")
    start, steps, finished = runs[-1]
    ckpts = folder / "checkpoints"
    ckpts.mkdir(exist_ok=True)
    save_every = max(steps // 5, 1)
    for step in list(range(save_every, steps + 1, save_every))[-keep:]:
        (ckpts / f"checkpoint_step_{step}.npz").write_bytes(b"\0" * 2048)
    (ckpts / "best_checkpoint.npz").write_bytes(b"\0" * 2048)
    if finished:
        final = folder / "outputs" / "final_model"
        final.mkdir(parents=True, exist_ok=True)
        (final / "lora_adapters.npz").write_bytes(b"\0" * 4096)
        write_mlx_report(folder, records)
    return folder


def write_mlx_report(folder: Path, records: list[dict[str, Any]]) -> Path:
    """`outputs/metrics/training_report.json` as the MLX trainer writes it at the end."""
    vals = [r["metrics"]["val_loss"] for r in records if r["level"] == "EPOCH_SUMMARY"]
    steps = [r["step"] for r in records if r["level"] == "METRICS"]
    return write_json(
        folder / "outputs" / "metrics" / "training_report.json",
        {
            "configuration": {
                "model": "mistralai/Mistral-7B-Instruct-v0.3",
                "lora_rank": 16,
                "lora_alpha": 32,
                "learning_rate": 5e-5,
                "batch_size": 2,
                "gradient_accumulation_steps": 4,
                "num_epochs": len(vals),
            },
            "training_results": {
                "total_epochs": len(vals),
                "total_steps": max(steps, default=0),
                "best_val_loss": min(vals, default=math.inf),
                "final_val_loss": vals[-1] if vals else None,
                "final_perplexity": math.exp(vals[-1]) if vals else None,
            },
            "resource_usage": {"peak_ram_gb": 14.2, "peak_metal_gb": 11.8},
            "sample_generations": [],
        },
    )


def write_evaluation(
    root: Path,
    name: str,
    model: str,
    prompt_set: str,
    results: list[tuple[str, bool, list[str]]],
    generated_at: datetime,
) -> Path:
    """An Evaluator result file: metadata, summary (with per-tag rates) and one record a case."""
    by_tag: dict[str, dict[str, float]] = {}
    for _, passed, tags in results:
        for tag in tags:
            stats = by_tag.setdefault(tag, {"total": 0, "passed": 0})
            stats["total"] += 1
            stats["passed"] += passed
    for stats in by_tag.values():
        stats["pass_rate"] = stats["passed"] / stats["total"]
    passed = sum(p for _, p, _ in results)
    failures = [f"Expected tools not called for {case}" for case, p, _ in results if not p]
    return write_json(
        root / "Evaluator" / "results" / f"{name}.json",
        {
            "metadata": {
                "model": model,
                "host": "127.0.0.1",
                "port": 11434,
                # As the Evaluator records it on the Windows machine that ran it.
                "prompt_file": "\\".join(
                    ["C:", "Toolset-Training", "Evaluator", "prompts", f"{prompt_set}.json"]
                ),
                "generated_at": generated_at.isoformat(),
            },
            "summary": {
                "total": len(results),
                "passed": passed,
                "failed": len(results) - passed,
                "request_errors": 0,
                "pass_rate": passed / len(results) if results else 0.0,
                "by_tag": by_tag,
                "top_failure_reasons": [[f, 1] for f in failures[:10]],
            },
            "records": [
                {
                    "case_id": case,
                    "tags": tags,
                    "passed": p,
                    "latency_s": 2.5,
                    "error": None,
                    "validator": {
                        "passed": p,
                        "issues": [] if p else [{"level": "error", "message": failures[0]}],
                    },
                }
                for case, p, tags in results
            ],
        },
    )
