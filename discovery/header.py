"""What a run page's header shows about how a run was trained, whatever wrote it down."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .values import as_dict, as_float, as_int, as_str, as_whole


@dataclass(frozen=True)
class RunHeader:
    base_model: str | None = None
    max_steps: int | None = None
    lora_rank: int | None = None
    lora_alpha: int | None = None
    learning_rate: float | None = None
    batch_size: int | None = None
    gradient_accumulation_steps: int | None = None
    dataset: str | None = None
    train_examples: int | None = None
    best_val_loss: float | None = None
    final_val_loss: float | None = None
    final_perplexity: float | None = None
    final_loss: float | None = None
    training_seconds: float | None = None
    training_time_text: str | None = None
    gpu_name: str | None = None
    gpu_memory_gb: float | None = None
    peak_ram_gb: float | None = None
    peak_metal_gb: float | None = None
    # Which keys the source holds, so "logged as Infinity" and "not logged" read differently.
    present: frozenset[str] = frozenset()


def _section(data: Mapping[str, Any] | None, key: str) -> Mapping[str, Any]:
    return as_dict((data or {}).get(key))


def _minutes(value: Any) -> float | None:
    minutes = as_float(value)
    return minutes * 60 if minutes is not None else None


def is_complete(lineage: Mapping[str, Any] | None) -> bool:
    """Whether a lineage names the base model and the LoRA, so no adapter config is needed."""
    named = as_str(_section(lineage, "model").get("base_model")) or as_str(
        _section(lineage, "base_model").get("name")
    )
    return bool(named and (_section(lineage, "lora") or _section(lineage, "lora_config")))


def from_sources(
    lineage: Mapping[str, Any] | None,
    adapter: Mapping[str, Any] | None = None,
    max_steps: int | None = None,
    runtime: float | None = None,
) -> RunHeader:
    """The header from `training_lineage.json` (or a layout's equivalent), falling back to the
    newest `adapter_config.json` for what a run still training has not written yet."""
    # The RTX trainers write `model.base_model`, `lora.rank`, `training`, `results`; the upstream
    # notebooks `base_model.name`, `lora_config.r`, `training_config`, `training_results`.
    model, lora = _section(lineage, "model"), _section(lineage, "lora")
    notebook_lora = _section(lineage, "lora_config")
    training = _section(lineage, "training") or _section(lineage, "training_config")
    dataset = _section(lineage, "dataset")
    results = _section(lineage, "results") or _section(lineage, "training_results")
    hardware, resources = _section(lineage, "hardware"), _section(lineage, "resources")
    adapter = adapter or {}
    base = (
        as_str(model.get("base_model"))
        or as_str(_section(lineage, "base_model").get("name"))
        or as_str((lineage or {}).get("base_model"))
        or as_str(adapter.get("base_model_name_or_path"))
    )
    rank, alpha = as_whole(lora.get("rank")), as_whole(lora.get("alpha"))
    if notebook_lora:
        rank, alpha = as_whole(notebook_lora.get("r")), as_whole(notebook_lora.get("alpha"))
    if not lora and not notebook_lora:
        rank, alpha = as_whole(adapter.get("r")), as_whole(adapter.get("lora_alpha"))
    lineage_steps = as_int(training.get("max_steps"))
    present = {f"results.{k}" for k in results} | {f"resources.{k}" for k in resources}
    return RunHeader(
        base_model=base,
        max_steps=max_steps or (lineage_steps if lineage_steps and lineage_steps > 0 else None),
        lora_rank=rank,
        lora_alpha=alpha,
        learning_rate=as_float(training.get("learning_rate")),
        batch_size=as_int(training.get("batch_size")),
        gradient_accumulation_steps=as_int(training.get("gradient_accumulation_steps")),
        dataset=as_str(dataset.get("source")) or as_str(dataset.get("name")),
        train_examples=as_int(dataset.get("train_examples"))
        or as_int(dataset.get("total_examples")),
        best_val_loss=as_float(results.get("best_val_loss")),
        final_val_loss=as_float(results.get("final_val_loss")),
        final_perplexity=as_float(results.get("final_perplexity")),
        final_loss=as_float(results.get("final_loss")),
        training_seconds=as_float(results.get("training_time_seconds"))
        or _minutes(results.get("training_duration_minutes"))
        or runtime,
        training_time_text=as_str(results.get("training_time_formatted")),
        gpu_name=as_str(hardware.get("gpu_name")) or as_str(hardware.get("gpu")),
        gpu_memory_gb=as_float(hardware.get("gpu_memory_gb")),
        peak_ram_gb=as_float(resources.get("peak_ram_gb")),
        peak_metal_gb=as_float(resources.get("peak_metal_gb")),
        present=frozenset(present),
    )
