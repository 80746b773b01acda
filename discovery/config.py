"""A run's configuration: one name per idea, whatever file wrote it down.

Read from the files trainers leave in a run folder: the upstream trainers'
`training_lineage.json`, PEFT's `adapter_config.json`, `trainer_state.json`, LLaMA-Factory's
`training_args.yaml`, the model card (`README.md`: its front matter and the Trainer's
"Training hyperparameters" list), and for the MLX trainer its `training_report.json` and config
YAML. The ideas every trainer writes under its own name (`lora_rank`, `r`, `lora.rank`) get one
name each (`lora.r`, see VOCABULARY); every other key keeps its own dotted name. Each value
keeps the file it came from; where two files disagree the newest file wins and the older value
is kept beside it, so a page can say so. `training_args.bin` is a pickle: it is never loaded.
"""

from __future__ import annotations

import functools
import math
import os
import re
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import caches, mlx
from .paths import FileKey, file_cache, file_key, loads_lenient
from .runs import Run
from .values import as_float, as_str
from .yamlfile import YamlRead, front_matter, read_yaml

Scalar = str | int | float | bool
Value = Scalar | tuple[Scalar, ...]

# The vocabulary: one name per idea, in the order a run's header shows them.
MAIN_KEYS = (
    "base_model",
    "method",
    "lora.r",
    "lora.alpha",
    "lora.dropout",
    "lora.target_modules",
    "learning_rate",
    "scheduler",
    "warmup",
    "warmup_steps",
    "epochs",
    "max_steps",
    "batch_size",
    "gradient_accumulation_steps",
    "effective_batch_size",
    "max_seq_length",
    "beta",
    "dataset",
    "train_examples",
    "seed",
    "gpu",
)
# Named once too, but not in a header: read in the configuration panel.
MORE_KEYS = (
    "eval_examples",
    "optimizer",
    "weight_decay",
    "max_grad_norm",
    "logging_steps",
    "eval_steps",
    "save_steps",
    "lora.bias",
    "lora.use_rslora",
    "lora.use_dora",
    "load_in_4bit",
    "gpu_memory_gb",
    "num_devices",
)
VOCABULARY = MAIN_KEYS + MORE_KEYS
LABELS = {
    "base_model": "Base model",
    "method": "Method",
    "lora.r": "LoRA r",
    "lora.alpha": "LoRA alpha",
    "lora.dropout": "LoRA dropout",
    "lora.target_modules": "LoRA targets",
    "learning_rate": "Learning rate",
    "scheduler": "Scheduler",
    "warmup": "Warmup ratio",
    "warmup_steps": "Warmup steps",
    "epochs": "Epochs",
    "max_steps": "Max steps",
    "batch_size": "Batch size",
    "gradient_accumulation_steps": "Accumulation",
    "effective_batch_size": "Effective batch",
    "max_seq_length": "Max sequence",
    "beta": "Beta",
    "dataset": "Dataset",
    "train_examples": "Train examples",
    "seed": "Seed",
    "gpu": "GPU",
}


def label(key: str) -> str:
    """A key as a header names it: "LoRA r" for `lora.r`; other keys as they are."""
    return LABELS.get(key, key)


# Where the value is a count: a float with nothing after the point is that integer
# (PEFT and LLaMA-Factory write `lora_alpha: 32.0`).
INTEGRAL = frozenset(
    {
        "lora.r",
        "lora.alpha",
        "epochs",
        "max_steps",
        "batch_size",
        "gradient_accumulation_steps",
        "effective_batch_size",
        "max_seq_length",
        "train_examples",
        "eval_examples",
        "seed",
        "warmup_steps",
        "logging_steps",
        "eval_steps",
        "save_steps",
        "num_devices",
    }
)
# Rates and ratios: always a float, even when written `0` or as the text "2e-4" (YAML 1.1
# reads `5e-5`, without a point, as a string).
FRACTIONAL = frozenset(
    {
        "learning_rate",
        "lora.dropout",
        "warmup",
        "beta",
        "weight_decay",
        "max_grad_norm",
        "gpu_memory_gb",
    }
)
NUMERIC = INTEGRAL | FRACTIONAL
# Where the value is this run's progress or result, not how it was set up: shown on the run
# page already, and different in every checkpoint's state (newest wins, no disagreement).
STATE_PROGRESS = frozenset(
    {
        "log_history",
        "global_step",
        "epoch",
        "total_flos",
        "num_input_tokens_seen",
        "best_metric",
        "best_global_step",
        "best_model_checkpoint",
        "stateful_callbacks",
        "is_local_process_zero",
        "is_world_process_zero",
        "is_hyper_param_search",
        "trial_name",
        "trial_params",
    }
)
METHODS = frozenset({"sft", "dpo", "kto", "orpo", "grpo", "ppo", "cpo", "rm", "pt", "simpo"})
# When no file names the method: the run's type (its trainer folder, or its logged metrics).
RUN_TYPE_SOURCE = "(run type)"
DERIVED_BATCH = "batch_size × gradient_accumulation_steps"
# Files are read whole (metadata); a file with more keys than this is not a configuration.
MAX_KEYS = 500
MAX_NODES = 5 * MAX_KEYS
MAX_TEXT = 2000
PICKLE = "training_args.bin"
PICKLE_NOTE = "is a Python pickle: not read, since loading one runs code"

# Each file's names for the vocabulary's ideas (dotted paths into the file).
LINEAGE_NAMES = {
    "training_type": "method",
    "training_method": "method",
    "model.base_model": "base_model",
    "base_model.name": "base_model",
    "base_model": "base_model",
    "model.max_seq_length": "max_seq_length",
    "model.load_in_4bit": "load_in_4bit",
    "lora.rank": "lora.r",
    "lora.r": "lora.r",
    "lora.alpha": "lora.alpha",
    "lora.dropout": "lora.dropout",
    "lora.target_modules": "lora.target_modules",
    "lora.bias": "lora.bias",
    "lora_config.r": "lora.r",
    "lora_config.alpha": "lora.alpha",
    "lora_config.lora_alpha": "lora.alpha",
    "lora_config.dropout": "lora.dropout",
    "lora_config.lora_dropout": "lora.dropout",
    "lora_config.target_modules": "lora.target_modules",
    "dataset.source": "dataset",
    "dataset.name": "dataset",
    "dataset.train_examples": "train_examples",
    "dataset.total_examples": "train_examples",
    "dataset.eval_examples": "eval_examples",
    "hardware.gpu_name": "gpu",
    "hardware.gpu": "gpu",
    "hardware.gpu_memory_gb": "gpu_memory_gb",
}
_TRAINING_NAMES = {
    "batch_size": "batch_size",
    "per_device_train_batch_size": "batch_size",
    "gradient_accumulation_steps": "gradient_accumulation_steps",
    "effective_batch_size": "effective_batch_size",
    "learning_rate": "learning_rate",
    "num_epochs": "epochs",
    "num_train_epochs": "epochs",
    "max_steps": "max_steps",
    "warmup_ratio": "warmup",
    "warmup_steps": "warmup_steps",
    "lr_scheduler": "scheduler",
    "lr_scheduler_type": "scheduler",
    "optimizer": "optimizer",
    "optim": "optimizer",
    "weight_decay": "weight_decay",
    "max_grad_norm": "max_grad_norm",
    "beta": "beta",
    "seed": "seed",
    "max_seq_length": "max_seq_length",
    "logging_steps": "logging_steps",
    "save_steps": "save_steps",
    "eval_steps": "eval_steps",
}
for _section in ("training", "training_config"):
    LINEAGE_NAMES |= {f"{_section}.{k}": v for k, v in _TRAINING_NAMES.items()}
ADAPTER_NAMES = {
    "base_model_name_or_path": "base_model",
    "r": "lora.r",
    "lora_alpha": "lora.alpha",
    "lora_dropout": "lora.dropout",
    "target_modules": "lora.target_modules",
    "bias": "lora.bias",
    "use_rslora": "lora.use_rslora",
    "use_dora": "lora.use_dora",
}
STATE_NAMES = {
    "train_batch_size": "batch_size",
    "num_train_epochs": "epochs",
    "max_steps": "max_steps",
    "logging_steps": "logging_steps",
    "eval_steps": "eval_steps",
    "save_steps": "save_steps",
}
# LLaMA-Factory's arguments: its own names, and Hugging Face TrainingArguments'.
LLAMA_FACTORY_NAMES = _TRAINING_NAMES | {
    "model_name_or_path": "base_model",
    "stage": "method",
    "lora_rank": "lora.r",
    "lora_alpha": "lora.alpha",
    "lora_dropout": "lora.dropout",
    "lora_target": "lora.target_modules",
    "cutoff_len": "max_seq_length",
    "pref_beta": "beta",
    "kto_beta": "beta",
    "dataset": "dataset",
    "quantization_bit": "quantization_bit",
}
# The Trainer's model card: "### Training hyperparameters" then "- learning_rate: 5e-05" lines.
MODEL_CARD_NAMES = {
    "base_model": "base_model",
    "learning_rate": "learning_rate",
    "train_batch_size": "batch_size",
    "seed": "seed",
    "num_devices": "num_devices",
    "gradient_accumulation_steps": "gradient_accumulation_steps",
    "total_train_batch_size": "effective_batch_size",
    "lr_scheduler_type": "scheduler",
    "lr_scheduler_warmup_ratio": "warmup",
    "lr_scheduler_warmup_steps": "warmup_steps",
    "num_epochs": "epochs",
    "training_steps": "max_steps",
    "optimizer": "optimizer",
}
MLX_REPORT_NAMES = {
    "configuration.model": "base_model",
    "configuration.lora_rank": "lora.r",
    "configuration.lora_alpha": "lora.alpha",
    "configuration.learning_rate": "learning_rate",
    "configuration.batch_size": "batch_size",
    "configuration.gradient_accumulation_steps": "gradient_accumulation_steps",
    "configuration.num_epochs": "epochs",
}
MLX_CONFIG_NAMES = {
    "model.name": "base_model",
    "model.max_seq_length": "max_seq_length",
    "lora.rank": "lora.r",
    "lora.alpha": "lora.alpha",
    "lora.dropout": "lora.dropout",
    "lora.target_modules": "lora.target_modules",
    "lora.bias": "lora.bias",
    "training.per_device_batch_size": "batch_size",
    "kto.beta": "beta",
    "data.dataset_path": "dataset",
    "data.max_seq_length": "max_seq_length",
} | {f"training.{k}": v for k, v in _TRAINING_NAMES.items()}


@dataclass(frozen=True, slots=True)
class Setting:
    """One idea's value, the file it came from (relative to the run folder), and the older
    files' different values that it overrules."""

    key: str
    value: Value
    source: str
    overruled: tuple[tuple[Value, str], ...] = ()
    derived: str | None = None  # how it was computed from other settings, when it was


@dataclass(frozen=True)
class RunConfig:
    settings: tuple[Setting, ...] = ()
    # Files that are there but gave nothing: (file, why).
    unread: tuple[tuple[str, str], ...] = ()

    @functools.cached_property
    def by_key(self) -> dict[str, Setting]:
        return {s.key: s for s in self.settings}

    def get(self, key: str) -> Value | None:
        s = self.by_key.get(key)
        return s.value if s is not None else None

    def values(self) -> dict[str, Value]:
        return {s.key: s.value for s in self.settings}

    def sources(self) -> dict[str, str]:
        return {s.key: s.source for s in self.settings}

    @property
    def main(self) -> tuple[Setting, ...]:
        return tuple(self.by_key[k] for k in MAIN_KEYS if k in self.by_key)

    @property
    def rest(self) -> tuple[Setting, ...]:
        return tuple(s for s in self.settings if s.key not in MAIN_KEYS)

    @property
    def disagreements(self) -> tuple[Setting, ...]:
        return tuple(s for s in self.settings if s.overruled)


def key_order(key: str) -> tuple[int, str]:
    """The vocabulary first, in its order; every other key by name."""
    try:
        return VOCABULARY.index(key), ""
    except ValueError:
        return len(VOCABULARY), key


# --- reading one file into (key, value) pairs


@dataclass(frozen=True)
class Flat:
    """One file's settings, flat, and what kept the rest of it from being read."""

    pairs: dict[str, Value]
    problem: str | None = None


Reader = Callable[[Path, Path], Flat | None]


def _text(value: str) -> str:
    return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + "…"


def _leaves(data: Mapping[str, Any], skip: frozenset[str] = frozenset()) -> Iterable[tuple]:
    """(dotted path, value) of every scalar and list of scalars, without recursion; at most
    MAX_NODES objects are opened (YAML aliases can make a small file a huge tree)."""
    stack: list[tuple[str, Any]] = [("", data)]
    opened = 0
    while stack:
        prefix, node = stack.pop()
        opened += 1
        if opened > MAX_NODES:
            return
        for k, v in reversed(list(node.items())):
            name = f"{prefix}{k}"
            if not prefix and str(k) in skip:
                continue
            if isinstance(v, dict):
                stack.append((f"{name}.", v))
            else:
                yield name, v


def _scalar(value: Any) -> Scalar | None:
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return _text(value.strip()) or None
    return None


def _plain(value: Any) -> Value | None:
    if isinstance(value, list):
        items = [_scalar(v) for v in value]
        if not items or any(v is None for v in items):
            return None  # a list of objects (a model index) is not one setting
        return tuple(v for v in items if v is not None)
    return _scalar(value)


_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def normalize(key: str, value: Value) -> Value | None:
    """One value per idea, whatever the file wrote: counts as integers, rates as floats,
    target modules in one order; None where the value says "not set" (max_steps -1)."""
    if key in NUMERIC:
        if isinstance(value, bool | tuple):
            return None
        if isinstance(value, str):
            if not _NUMBER.fullmatch(value):
                return None
            value = float(value)
        if as_float(value) is None:
            return None  # a number no float holds (a 401-digit integer) is no setting
        if key in FRACTIONAL:
            return float(value)
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if key == "max_steps" and value <= 0:
            return None  # Hugging Face's -1: trained by epochs
        return value
    if key == "method" and isinstance(value, str):
        return value.lower()
    if key == "lora.target_modules":
        if isinstance(value, str) and "," in value:
            value = tuple(v.strip() for v in value.split(",") if v.strip())
        if isinstance(value, tuple):
            return tuple(sorted({str(v) for v in value}))
    if isinstance(value, str) and key in ("base_model", "dataset", "gpu") and not value:
        return None
    return value


def _shared(value: Value) -> Value:
    """Short text once in memory, however many runs' files say it: /explore/ keeps every run's
    configuration, and most runs of a workspace share their base model, targets and scheduler."""
    if isinstance(value, tuple):
        return tuple(_shared_scalar(v) for v in value)
    return _shared_scalar(value)


def _shared_scalar(value: Scalar) -> Scalar:
    return sys.intern(value) if isinstance(value, str) and len(value) <= 200 else value


def flatten(
    data: Mapping[str, Any],
    names: Mapping[str, str],
    prefix: str = "",
    skip: frozenset[str] = frozenset(),
) -> Flat:
    """A file's values: its names for the vocabulary's ideas renamed, every other key under
    `prefix` + its own dotted path."""
    pairs: dict[str, Value] = {}
    problem = None
    for path, raw in _leaves(data, skip):
        value = _plain(raw)
        if value is None:
            continue
        key = names.get(path) or sys.intern(f"{prefix}{path}")
        value = normalize(key, value)
        if value is None:
            continue
        if key in pairs and path not in names:
            continue  # a vocabulary name wins over a stray key that reads the same
        pairs[key] = _shared(value)
        if len(pairs) >= MAX_KEYS:
            problem = f"has more than {MAX_KEYS} settings: the first {MAX_KEYS} are shown"
            break
    return Flat(pairs, problem)


def _json_file(
    kind: str, names: Mapping[str, str], prefix: str = "", skip: frozenset[str] = frozenset()
) -> Reader:
    def load(data: bytes) -> Flat:
        value = loads_lenient(data)
        if not isinstance(value, dict):
            return Flat({}, "is not a JSON object")
        return flatten(value, names, prefix, skip)

    def read(path: Path, root: Path) -> Flat | None:
        # The settings are kept, not the parsed file: /explore/ reads every run's.
        found = file_cache.get(path, root, kind, load)
        if found is None:
            return Flat({}, "is not a JSON object") if os.path.exists(path) else None
        return found

    return read


def _yaml_pairs(found: YamlRead | None, names: Mapping[str, str], prefix: str = "") -> Flat | None:
    if found is None:
        return None
    if found.data is None:
        return Flat({}, found.problem)
    return flatten(found.data, names, prefix)


def _llama_factory(path: Path, root: Path) -> Flat | None:
    # The one YAML reader, shared with the run readers (metric_for_best_model).
    return _yaml_pairs(read_yaml(path, root), LLAMA_FACTORY_NAMES)


def _state(path: Path, root: Path) -> Flat | None:
    """`trainer_state.json`'s settings: its log history and progress aside."""

    def load(data: bytes) -> Flat:
        value = loads_lenient(data)
        if not isinstance(value, dict):
            return Flat({}, "is not a JSON object")
        return flatten(value, STATE_NAMES, "trainer_state.", STATE_PROGRESS)

    return file_cache.get(path, root, "config_state", load)


_HYPERPARAMETERS = re.compile(r"^#+\s*Training hyperparameters\s*$", re.MULTILINE | re.IGNORECASE)
_ITEM = re.compile(r"^-\s*([A-Za-z_][\w.]*):\s*(.+?)\s*$")
_OPTIMIZER = re.compile(r"(?:Use\s+)?(\w+)")


def model_card(text: str) -> Flat | None:
    """A model card's front matter (`base_model`, the method among its `tags`) and the
    Trainer's "Training hyperparameters" list; None when it has neither."""
    pairs: dict[str, Value] = {}
    problem = None
    fm = front_matter(text)
    if fm is not None and fm.data is None:
        problem = f"front matter {fm.problem}"
    elif fm is not None and fm.data is not None:
        data = fm.data
        base = data.get("base_model")
        if isinstance(base, list) and len(base) == 1:
            base = base[0]
        named = as_str(base)
        if named and named.strip():
            pairs["base_model"] = _text(named.strip())
        tags = data.get("tags")
        found = sorted(
            {t.lower() for t in tags if isinstance(t, str)} & METHODS
            if isinstance(tags, list)
            else set()
        )
        if len(found) == 1:
            pairs["method"] = found[0]
        for k in ("library_name", "model_name", "license", "pipeline_tag"):
            v = _scalar(data.get(k))
            if v is not None:
                pairs[f"model_card.{k}"] = v
    heading = _HYPERPARAMETERS.search(text)
    if heading is not None:
        started = False
        for line in text[heading.end() :].splitlines():
            m = _ITEM.match(line.strip())
            if m is None:
                if started and (line.startswith("#") or not line.strip()):
                    break
                continue
            started = True
            name, raw = m.group(1), m.group(2)
            key = MODEL_CARD_NAMES.get(name) or f"model_card.{name}"
            value: Value = raw
            if key == "optimizer":
                first = _OPTIMIZER.match(raw)
                value = first.group(1) if first else raw
            elif _NUMBER.fullmatch(raw):
                number = float(raw)
                value = int(number) if number.is_integer() and "." not in raw else number
            normalized = normalize(key, value)
            if normalized is not None:
                pairs[key] = normalized
            if len(pairs) >= MAX_KEYS:
                break
    if not pairs and problem is None:
        return None
    return Flat(pairs, problem)


def _model_card(path: Path, root: Path) -> Flat | None:
    def load(data: bytes) -> Flat | None:
        return model_card(data[:1_000_000].decode("utf-8", errors="replace"))

    return file_cache.get(path, root, "config_model_card", load)


def _pickle(path: Path, root: Path) -> Flat | None:
    return Flat({}, PICKLE_NOTE)


_lineage = _json_file("config_lineage", LINEAGE_NAMES, skip=frozenset({"run_directory"}))
_adapter = _json_file("config_adapter", ADAPTER_NAMES, "adapter.")
_mlx_report = _json_file(
    "config_mlx_report", MLX_REPORT_NAMES, skip=frozenset({"sample_generations"})
)

# Per folder: the files read, in the order that breaks a tie of equal times (later wins):
# a file that states the whole setup wins over one that states a part of it.
TOP_FILES: tuple[tuple[str, Reader], ...] = (
    ("README.md", _model_card),
    ("trainer_state.json", _state),
    ("adapter_config.json", _adapter),
    ("training_args.yaml", _llama_factory),
    ("training_lineage.json", _lineage),
    (PICKLE, _pickle),
)
MODEL_FILES: tuple[tuple[str, Reader], ...] = (
    ("README.md", _model_card),
    ("trainer_state.json", _state),
    ("adapter_config.json", _adapter),
)


# --- one run


@dataclass(frozen=True)
class _Candidate:
    rel: str  # relative to the run folder
    path: str  # a string: made for every file of every run on each check, Paths cost 5 times
    read: Reader


def _candidates(run: Run) -> list[_Candidate]:
    """The files a run's configuration is read from, whether or not they are there."""
    if run.trainer.layout == "mlx":
        return _mlx_candidates(run)
    found = []
    here = str(run.path)
    folders: list[str] = []
    if run.final is not None and run.final[1] == "folder":
        folders.append(str(run.final[0]))
    if run.checkpoint_steps:
        folders.append(f"{run.checkpoints_dir}/checkpoint-{run.checkpoint_steps[-1]}")
    for folder in folders:
        rel = os.path.relpath(folder, here)
        for name, read in MODEL_FILES:
            # Interned: most runs' newest checkpoints share a name, and every setting keeps it.
            found.append(_Candidate(sys.intern(f"{rel}/{name}"), f"{folder}/{name}", read))
    # The run's own files last: written in the same instant, its lineage wins.
    return found + [_Candidate(name, f"{here}/{name}", read) for name, read in TOP_FILES]


def _mlx_candidates(run: Run) -> list[_Candidate]:
    part = next(
        (m for m in mlx.runs(run.path, run.trainer.root) if m.segment.name == run.name), None
    )
    if part is None:
        return []
    found = []
    config = _mlx_config(run.path, run.trainer.root, part.profile)
    if config is not None:
        rel = config.relative_to(run.path).as_posix()
        found.append(_Candidate(rel, str(config), _mlx_config_reader(part.last_write)))
    if part.report is not None:
        rel = part.profile.report.as_posix()
        found.append(_Candidate(rel, str(part.report), _mlx_report))
    return found


def _mlx_config(folder: Path, root: Path, profile: mlx.Profile) -> Path | None:
    """The config file whose `output` section writes this profile's logs: `config/config.yaml`
    for the default folders, a test config for the test ones."""
    configs = folder / "config"
    try:
        names = sorted(n for n in os.listdir(configs) if n.endswith((".yaml", ".yml")))
    except OSError:
        return None
    for name in names:
        found = read_yaml(configs / name, root)
        if found is None or found.data is None:
            continue
        output = found.data.get("output")
        logs = output.get("logs_dir") if isinstance(output, dict) else None
        if logs == profile.logs or (logs is None and not profile.suffix and name == "config.yaml"):
            return configs / name
    return None


def _mlx_config_reader(run_ended: float | None) -> Reader:
    def read(path: Path, root: Path) -> Flat | None:
        # The config is shared by every run of the trainer: one edited after this run ended
        # says how the next run was set up, not this one.
        try:
            changed = os.stat(path).st_mtime
        except OSError:
            return None
        if run_ended is not None and changed > run_ended + 1:
            return Flat({}, "changed after this run ended: it describes a later run")
        return _yaml_pairs(read_yaml(path, root), MLX_CONFIG_NAMES)

    return read


Identity = FileKey | None


def _merge(reads: list[tuple[tuple[int, int], str, Flat]]) -> dict[str, Setting]:
    """Oldest file first: each newer file's value replaces an older one, and keeps the older
    one beside it when they differ."""
    merged: dict[str, Setting] = {}
    for _, rel, read in sorted(reads, key=lambda r: r[0]):
        for key, value in read.pairs.items():
            old = merged.get(key)
            if old is None:
                merged[key] = Setting(key, value, rel)
            elif _same(old.value, value):
                merged[key] = Setting(key, value, rel, old.overruled)
            else:
                merged[key] = Setting(key, value, rel, ((old.value, old.source), *old.overruled))
    return merged


def _same(a: Value, b: Value) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        x, y = as_float(a), as_float(b)
        if a == b or x is None or y is None:
            return a == b
        return math.isfinite(x) and math.isclose(x, y, rel_tol=1e-9)
    return a == b


def _derive(merged: dict[str, Setting]) -> None:
    """The effective batch where no file says it: per-device batch × accumulation."""
    batch, accum = merged.get("batch_size"), merged.get("gradient_accumulation_steps")
    if "effective_batch_size" in merged or batch is None or accum is None:
        return
    if isinstance(batch.value, int) and isinstance(accum.value, int):
        merged["effective_batch_size"] = Setting(
            "effective_batch_size", batch.value * accum.value, batch.source, derived=DERIVED_BATCH
        )


def read_config(run: Run) -> RunConfig:
    """A run's configuration, read now (see `config_of` for the cached one)."""
    return _read(run, [(c, file_key(c.path)) for c in _candidates(run)])


def _read(run: Run, present: list[tuple[_Candidate, Identity]]) -> RunConfig:
    reads: list[tuple[tuple[int, int], str, Flat]] = []
    unread: list[tuple[str, str]] = []
    for order, (c, ident) in enumerate(present):
        if ident is None:
            continue
        got = c.read(Path(c.path), run.trainer.root)
        if got is None:
            continue
        if got.problem:
            unread.append((c.rel, got.problem))
        if got.pairs:
            # Newest file last; among files written in the same instant, the later candidate.
            reads.append(((ident[3], order), c.rel, got))
    merged = _merge(reads)
    _derive(merged)
    if "method" not in merged and run.type:
        merged["method"] = Setting("method", run.type, RUN_TYPE_SOURCE)
    settings = tuple(sorted(merged.values(), key=lambda s: key_order(s.key)))
    return RunConfig(settings, tuple(unread))


# run id → (the files' keys, the configuration, the Run it was checked for). The Run is held
# weakly: a newer walk's runs replace it, and the old walk should not stay in memory with it.
_cache: dict[str, tuple[tuple, RunConfig, weakref.ref[Run]]] = {}
_cache_lock = threading.Lock()


def config_of(run: Run) -> RunConfig:
    """A run's configuration, reused while none of its files changes (device, inode, size and
    time of each file it is read from, and of each that could appear). A walk reused for a
    moment (Workspace.walk_reuse) hands out the same finished runs again: their configuration
    is reused with them, unchecked, as everything else its pages show is."""
    with _cache_lock:
        hit = _cache.get(run.id)
    if hit is not None and hit[2]() is run and run.status != "running":
        return hit[1]
    present = [(c, file_key(c.path)) for c in _candidates(run)]
    # One flat tuple: a thousand runs' keys are kept.
    key = (str(run.path), run.type, *(x for c, ident in present for x in (c.rel, *(ident or ()))))
    found = hit[1] if hit is not None and hit[0] == key else _read(run, present)
    with _cache_lock:
        _cache[run.id] = (key, found, weakref.ref(run))
    return found


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


caches.register(__name__, clear_cache, "_cache")


# What a run produced, not how it was set up: left out of a comparison of settings.
NOT_SETTINGS = ("results.", "resources.", "timestamp")


@dataclass(frozen=True)
class Difference:
    key: str
    values: tuple[Value | None, ...]  # one per run, None where a run does not say


def differences(configs: Sequence[RunConfig]) -> tuple[tuple[Difference, ...], tuple[str, ...]]:
    """The settings whose values differ between runs (a value one run lacks is a difference),
    in the vocabulary's order; and the keys every run has with one value."""
    keys = sorted(
        {k for c in configs for k in c.by_key if not k.startswith(NOT_SETTINGS)}, key=key_order
    )
    differ, same = [], []
    for key in keys:
        values = tuple(c.get(key) for c in configs)
        first = values[0]
        if first is not None and all(v is not None and _same(first, v) for v in values[1:]):
            same.append(key)
        else:
            differ.append(Difference(key, values))
    return tuple(differ), tuple(same)


# `?where=<key><op><value>`: the longer operators first, so `<=` is not read as `<`.
OPERATORS = ("<=", ">=", "!=", "=", "<", ">")
_WHERE = re.compile(r"(?P<key>[^<>=!]+?)\s*(?P<op><=|>=|!=|=|<|>)\s*(?P<value>.*)")


@dataclass(frozen=True)
class Where:
    """A filter on one setting: `lora.r>=32`, `scheduler=cosine`, `lora.target_modules=q_proj`.

    Numbers compare as numbers (`2e-4` equals `0.0002`), anything else as text; a list matches
    `=` when one of its items (or all of them, comma-joined) is the value. A run without the
    setting matches no filter on it, `!=` included.
    """

    key: str
    op: str
    value: str

    @property
    def text(self) -> str:
        return f"{self.key}{self.op}{self.value}"

    def test(self, value: Value | None) -> bool:
        if value is None:
            return False
        if isinstance(value, tuple):
            found = self.value in {str(v) for v in value} or self.value == ",".join(map(str, value))
            return {"=": found, "!=": not found}.get(self.op, False)
        if isinstance(value, bool):
            same = self.value.lower() == ("true" if value else "false")
            return {"=": same, "!=": not same}.get(self.op, False)
        wanted = _number(self.value)
        if isinstance(value, int | float) and wanted is not None:
            return _compare(float(value), self.op, wanted)
        if self.op in ("=", "!="):
            same = str(value) == self.value
            return same if self.op == "=" else not same
        return False  # text has no order here


def _number(text: str) -> float | None:
    return float(text) if _NUMBER.fullmatch(text.strip()) else None


def _compare(a: float, op: str, b: float) -> bool:
    if op in ("=", "!="):
        same = a == b or math.isclose(a, b, rel_tol=1e-9)
        return same if op == "=" else not same
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


class WhereError(ValueError):
    """A filter that does not parse; the message says what would."""


def parse_where(text: str) -> Where:
    m = _WHERE.fullmatch(text.strip())
    if m is None or not m["value"].strip():
        raise WhereError(
            f"where must be <key><operator><value> with an operator among "
            f"{', '.join(OPERATORS)}, such as lora.r>=32 or scheduler=cosine. Got {text!r}."
        )
    return Where(m["key"].strip(), m["op"], m["value"].strip())


def sort_key(value: Value | None) -> tuple[int, float, str]:
    """A configuration column's order: numbers by value, then text, then runs without one."""
    if value is None:
        return (2, 0.0, "")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value), "")
    if isinstance(value, tuple):
        return (1, 0.0, ",".join(map(str, value)))
    return (1, 0.0, str(value))
