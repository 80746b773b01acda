"""Training runs written in the upstream layouts (HF trainers, the Mac MLX trainer), for tests,
the demo and the benchmarks."""

from __future__ import annotations

import io
import json
import math
import os
import random
import zipfile
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

BASE_MODELS = (
    "unsloth/mistral-7b-v0.3-bnb-4bit",
    "unsloth/Qwen2.5-7B-Instruct-bnb-4bit",
    "unsloth/llama-3.1-8b-instruct-bnb-4bit",
)
# The adapter's target modules, in its adapter_config.json and in the lineage alike.
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
SECONDS_PER_STEP = 30.0  # the runs' simulated pace: log timestamps and train_runtime agree


def output_dir(root: Path, run_type: str, platform: str = "rtx3090") -> Path:
    """Where the upstream trainers put their runs: `rtx3090_sft/sft_output_rtx3090/`, or in
    its later layout (platform ""), `dpo/dpo_output/`."""
    if not platform:
        return root / "Trainers" / run_type / f"{run_type}_output"
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


def adapter_weights(tag: str, size: int) -> bytes:
    """`size` bytes in safetensors' layout (header length, JSON header, data), the header naming
    `tag`: each checkpoint's adapter is its own file, as a real run's are (a server that is
    given them tells them apart by digest)."""
    header = json.dumps({"__metadata__": {"checkpoint": tag}}).encode()
    return (len(header).to_bytes(8, "little") + header).ljust(size, b"\0")


def adapter_config(base_model: str, r: int = 32, alpha: int = 64) -> dict[str, Any]:
    return {
        "base_model_name_or_path": base_model,
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": r,
        "lora_alpha": alpha,
        "lora_dropout": 0.05,
        "bias": "none",
        "target_modules": list(TARGET_MODULES),
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
    (ckpt / "adapter_model.safetensors").write_bytes(
        adapter_weights(f"{run_dir.name}/{step}", 4096)
    )
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
    (final / "adapter_model.safetensors").write_bytes(
        adapter_weights(f"{run_dir.name}/final", 8192)
    )
    write_json(final / "tokenizer_config.json", {"model_max_length": 2048})
    (final / "README.md").write_text(f"# LoRA adapter for {base_model}\n")
    return final


def lineage(
    run_type: str,
    run_dir: Path,
    base_model: str,
    max_steps: int,
    lr: float,
    training_seconds: float,
) -> dict:
    """What upstream writes after a successful run; `training_seconds` is the log's
    `train_runtime`, as both come from the same trainer."""
    return {
        "training_type": run_type.upper(),
        "timestamp": datetime.now().isoformat(),
        "run_directory": f"{run_type}_output_rtx3090/{run_dir.name}",
        "model": {"base_model": base_model, "max_seq_length": 2048, "load_in_4bit": True},
        "lora": {
            "rank": 32,
            "alpha": 64,
            "dropout": 0.05,
            "target_modules": list(TARGET_MODULES),
        },
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
            "training_time_seconds": training_seconds,
            "training_time_formatted": _hms(round(training_seconds)),
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
    elif run_type == "dpo":
        # TRL's DPOTrainer keys; the training margin peaks early and wobbles after.
        margin = 0.6 * math.sin(math.pi * min(progress * 1.6, 1.0)) + rng.gauss(0, 0.08)
        chosen = 0.3 + margin / 2 + rng.gauss(0, 0.03)
        line |= {
            "loss": round(0.6931 - 0.25 * progress + rng.gauss(0, 0.02), 4),
            "grad_norm": abs(rng.gauss(5.0, 0.5)),
            "learning_rate": lr * (1 - progress),
            "rewards/chosen": chosen,
            "rewards/rejected": chosen - margin,
            "rewards/margins": margin,
            "rewards/accuracies": min(1.0, max(0.0, 0.55 + 0.3 * progress + rng.gauss(0, 0.05))),
            "logps/chosen": -320 + rng.gauss(0, 10),
            "logps/rejected": -310 + rng.gauss(0, 10),
        }
    elif run_type == "grpo":
        reward = 3.5 * (1 - math.exp(-3 * progress)) - 1 + rng.gauss(0, 0.6)
        line |= {
            "loss": round(rng.gauss(0.0005, 0.0004), 4),
            "grad_norm": abs(rng.gauss(0.5, 0.2)),
            "learning_rate": lr * (1 - progress),
            "reward": reward,
            "reward_std": abs(rng.gauss(2.0, 0.5)),
            "kl": max(0.0, 0.002 * progress + rng.gauss(0, 0.0003)),
            "completion_length": 120 + rng.gauss(0, 15),
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


def eval_line(run_type: str, step: int, max_steps: int, train: dict[str, Any]) -> dict[str, Any]:
    """An eval line as the Trainer logs it beside a training line."""
    progress = step / max_steps
    if run_type == "dpo":
        # Held-out margins keep climbing after the training margin has peaked.
        return {
            "step": step,
            "eval_loss": round(0.6931 - 0.2 * progress, 4),
            "eval_rewards/margins": round(0.05 + 0.45 * progress, 4),
            "eval_rewards/accuracies": round(0.55 + 0.25 * progress, 4),
            "eval_runtime": 58.6,
            "eval_samples_per_second": 1.705,
            "epoch": train["epoch"],
        }
    # Held-out loss that bottoms out and climbs again: the model starts to overfit.
    eval_loss = train.get("loss", 1.0) * 1.05 + 0.9 * progress**3
    return {"step": step, "eval_loss": round(eval_loss, 4), "epoch": train["epoch"]}


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
    layout: str = "upstream",
    seconds_per_step: float = SECONDS_PER_STEP,
) -> Path:
    """A run folder with checkpoints, a log, and (when completed) final model and lineage.

    `layout="hf"`: what a plain Hugging Face Trainer writes instead: `checkpoint-N/` at the
    run's top, each with the whole log_history; `save_state()` and `save_model()` at the end;
    no JSONL log and no lineage.
    """
    rng = random.Random(seed)
    done = max_steps if done is None else done
    run_dir = output_dir(root, run_type, platform) / started.strftime("%Y%m%d_%H%M%S")
    stamp = (started + timedelta(minutes=2)).strftime("%Y%m%d_%H%M%S")
    lines = []
    for step in range(log_every, done + 1, log_every):
        line = metric_line(run_type, step, max_steps, rng, lr)
        line["timestamp"] = (started + timedelta(seconds=seconds_per_step * step)).isoformat()
        line["interval_time"] = seconds_per_step * log_every  # the time since the line before
        lines.append(line)
        if eval_every and step % eval_every == 0:
            lines.append(eval_line(run_type, step, max_steps, line))
    if completed and lines:
        ended = started + timedelta(seconds=SECONDS_PER_STEP * done + 20)
        lines.append(
            {
                "step": done,
                "timestamp": ended.isoformat(),
                "train_runtime": SECONDS_PER_STEP * done,
                "train_loss": sum(x.get("loss", 0) for x in lines) / len(lines),
                "epoch": lines[-1]["epoch"],
            }
        )
    saves = list(range(save_every, done + 1, save_every))
    if keep:
        saves = saves[-keep:]
    if layout == "hf":
        _hf_layout(run_dir, lines, saves, max_steps, completed, base_model)
        return _aged(run_dir, mtime)
    log = write_log(run_dir, lines, stamp)
    link_latest(run_dir, log)
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
        seconds = SECONDS_PER_STEP * done
        write_json(
            run_dir / "training_lineage.json",
            lineage(run_type, run_dir, base_model, max_steps, lr, seconds),
        )
    return _aged(run_dir, mtime)


def _aged(run_dir: Path, mtime: float | None) -> Path:
    if mtime is not None:
        for dirpath, dirs, files in os.walk(run_dir):
            for name in [*dirs, *files]:
                os.utime(os.path.join(dirpath, name), (mtime, mtime), follow_symlinks=False)
            os.utime(dirpath, (mtime, mtime))
    return run_dir


def _hf_layout(
    run_dir: Path,
    lines: list[dict[str, Any]],
    saves: list[int],
    max_steps: int,
    completed: bool,
    base_model: str,
) -> None:
    history = [
        {k: v for k, v in x.items() if k not in ("timestamp", "interval_time")} for x in lines
    ]
    for step in saves:
        ckpt = run_dir / f"checkpoint-{step}"
        ckpt.mkdir(parents=True, exist_ok=True)
        write_json(ckpt / "adapter_config.json", adapter_config(base_model))
        (ckpt / "adapter_model.safetensors").write_bytes(
            adapter_weights(f"{run_dir.name}/{step}", 4096)
        )
        write_json(ckpt / "trainer_state.json", _state(step, max_steps, history))
    if completed:
        last = history[-1]["step"] if history else max_steps
        write_json(run_dir / "trainer_state.json", _state(last, max_steps, history))
        write_json(run_dir / "adapter_config.json", adapter_config(base_model))
        (run_dir / "adapter_model.safetensors").write_bytes(
            adapter_weights(f"{run_dir.name}/final", 8192)
        )


def _state(step: int, max_steps: int, history: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "best_global_step": None,
        "best_metric": None,
        "best_model_checkpoint": None,
        "epoch": round(2 * step / max_steps, 4),
        "global_step": step,
        "log_history": [x for x in history if x["step"] <= step],
        "logging_steps": 5,
        "max_steps": max_steps,
        "save_steps": 50,
    }


def mlx_val_loss(step: int, steps: int, rng: random.Random) -> float:
    """Validation loss that bottoms out a little before the middle, then overfits."""
    return round(0.9 + 0.8 * (step / steps - 0.42) ** 2 + rng.gauss(0, 0.005), 6)


def mlx_records(
    started: datetime,
    steps: int,
    *,
    epochs: int = 2,
    model: str = "mistralai/Mistral-7B-Instruct-v0.3",
    finished: bool = True,
    seed: int = 0,
    log_dir: str = "logs",
) -> list[dict[str, Any]]:
    """One run's records as the MLX trainer's structured logger writes them (main.py,
    trainer.py, utils.py upstream): metrics each step, an evaluation at each save."""
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
        rec("INFO", "=" * 80),
        rec("INFO", "Log level: INFO"),
        rec("INFO", f"Log directory: {log_dir}"),
        rec("INFO", f"Loading model: {model}"),
        rec("INFO", "Trainer initialized:"),
        rec("INFO", f"  Total steps: {steps}"),
    ]
    per_epoch = max(steps // epochs, 1)
    save_every = max(steps // 5, 1)
    best = math.inf
    for step in range(1, steps + 1):
        loss = 2.2 * math.exp(-3 * step / steps) + 0.3 + rng.gauss(0, 0.03)
        metrics = {"loss": loss, "lr": 5e-5, "step_time": 2.5, "tokens_per_sec": 900.0}
        line = " | ".join(f"{k}: {v:.6f}" for k, v in metrics.items())
        out.append(rec("INFO", f"Step {step} | {line}"))
        out.append(rec("METRICS", "Training metrics", step=step, metrics=metrics))
        if step % save_every == 0:
            val = mlx_val_loss(step, steps, rng)
            out.append(rec("INFO", f"Validation loss: {val:.4f}"))
            if val < best:
                best = val
                out.append(rec("INFO", f"New best validation loss: {val:.4f}"))
            out.append(rec("INFO", f"Saving checkpoint: checkpoints/checkpoint_step_{step}.npz"))
        if step % per_epoch == 0:
            epoch = step // per_epoch
            val = mlx_val_loss(step, steps, rng)
            out.append(rec("INFO", f"Validation loss: {val:.4f}"))
            out.append(
                rec(
                    "EPOCH_SUMMARY",
                    f"Epoch {epoch} complete",
                    epoch=epoch,
                    metrics={"epoch": epoch, "train_loss": loss, "val_loss": val, "steps": step},
                )
            )
    if finished:
        out.append(rec("INFO", "Training Complete!"))
        out.append(rec("INFO", "Saving Final Model"))
        out.append(rec("INFO", "Training report saved to: outputs/metrics/training_report.json"))
    return out


def npz_checkpoint(state: dict[str, Any]) -> bytes:
    """A checkpoint .npz as `np.savez` writes it: a zip of .npy files. `state.npy` holds the
    trainer state as one JSON string (dtype <U n); the weights are stand-in bytes."""
    text = json.dumps(state)
    header = "{'descr': '<U" + str(len(text)) + "', 'fortran_order': False, 'shape': (), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"  # .npy aligns data to 64 bytes
    npy = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode("latin-1")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("state.npy", npy + text.encode("utf-32-le"))
        z.writestr("model_params.npy", b"\0" * 1024)
    return buf.getvalue()


def make_mlx_trainer(
    root: Path,
    runs: list[tuple[datetime, int, bool]],
    name: str = "mistral_lora_mac",
    keep: int = 3,
) -> Path:
    """An MLX trainer folder whose one log holds these runs (start, steps, finished); the files
    in the shared folders are the last run's, as the upstream trainer leaves them."""
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
    # main.py creates the final model's folder at start; only a finished run writes the file.
    (folder / "outputs" / "final_model").mkdir(parents=True, exist_ok=True)
    vals = _val_losses(records)
    best = math.inf
    save_every = max(steps // 5, 1)
    saves = list(range(save_every, steps + 1, save_every))
    for step in saves:
        state = {
            "epoch": 0,
            "global_step": step,
            "best_val_loss": min(best, vals.get(step, math.inf)),
            "train_loss_history": [],
            "val_loss_history": [vals[s] for s in saves if s <= step and s in vals],
            "learning_rates": [],
        }
        data = npz_checkpoint(state)
        (ckpts / f"checkpoint_step_{step}.npz").write_bytes(data)
        if vals.get(step, math.inf) < best:
            best = vals[step]
            (ckpts / "best_checkpoint.npz").write_bytes(data)  # shutil.copy upstream
    for step in saves[:-keep]:  # only the last few are kept; the best copy stays
        (ckpts / f"checkpoint_step_{step}.npz").unlink()
    if finished:
        (folder / "outputs" / "final_model" / "lora_adapters.npz").write_bytes(b"\0" * 4096)
        write_mlx_report(folder, records)
    return folder


def _val_losses(records: list[dict[str, Any]]) -> dict[int, float]:
    """The validation loss logged at each step (the first one, where two are)."""
    found: dict[int, float] = {}
    step = None
    for r in records:
        if r["level"] == "METRICS":
            step = r["step"]
        elif r["message"].startswith("Validation loss: ") and step is not None:
            found.setdefault(step, float(r["message"].split(": ")[1]))
    return found


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
