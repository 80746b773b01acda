"""Checkpoints of a run, each metric's value at each one, their trainer state and their files.

Two layouts: the upstream trainers' `<run>/checkpoints/checkpoint-N/`, and Hugging Face's own
`<output_dir>/checkpoint-N/`, which every Trainer writes by itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .logs import EMPTY_POINT, Entry, History, Point, Source, merge_into, parse_obj, shapes_of
from .paths import (
    child_joiner,
    file_cache,
    link_leaves,
    listing,
    loads_lenient,
    open_in,
    read_json_object,
    scan,
)
from .values import as_dict, as_float, as_int, as_list, as_str, as_whole

CHECKPOINT_NAME = re.compile(r"checkpoint-(\d{1,18})")  # steps stay within int64
_NUMBER_AT = len("checkpoint-")
FINAL_MODEL = "final_model"
# What `save_pretrained` leaves, in every shape: a single file, a model over `max_shard_size`
# as numbered shards with their index, the older `pytorch_model.bin` (sharded alike), a PEFT
# adapter, and mlx-lm's adapters (`adapters.safetensors`, once `adapters.npz`).
SAVED_MODEL_FILES = frozenset(
    {
        "adapter_model.safetensors",
        "adapter_model.bin",
        "model.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
        "pytorch_model.bin.index.json",
        "adapters.safetensors",
        "adapters.npz",
    }
)
SHARD_NAME = re.compile(r"(?:model|pytorch_model)-\d{5}-of-\d{5}\.(?:safetensors|bin)")


def is_model_file(name: str) -> bool:
    """A file name `save_pretrained` (or mlx-lm) writes a model or adapter's weights under."""
    if name in SAVED_MODEL_FILES:
        return True
    # Every run's walk asks this of each entry: the regex only for names that could match.
    return name.startswith(("model-", "pytorch_model-")) and SHARD_NAME.fullmatch(name) is not None


@dataclass(frozen=True)
class Checkpoint:
    name: str
    step: int | None
    is_final: bool
    path: Path  # its folder; a single file (MLX .npz); or the run folder, for a top-level model
    point: Point = EMPTY_POINT  # each metric's latest value at or before `step`
    # "folder", "file", or "top": the model files at the top of the run folder (not its subfolders)
    kind: str = "folder"
    # Left in a reused output folder by an earlier run: its own trainer_state.json disagrees
    # with the newest run's, so its values come from that state.
    earlier_run: bool = False

    @property
    def metrics(self) -> Mapping[str, float]:
        return self.point.values

    @property
    def metrics_step(self) -> int | None:
        """The newest logged step the metrics come from."""
        return self.point.step

    @property
    def metric_steps(self) -> dict[str, int]:
        """The metrics whose value was logged before this checkpoint's own step, with that step."""
        if self.step is None:
            return {}
        return {k: s for k, s in self.point.steps.items() if s != self.step}


@dataclass(frozen=True)
class FileInfo:
    name: str
    size: int


@dataclass(frozen=True)
class EarlyStopping:
    """transformers' EarlyStoppingCallback as a trainer_state.json keeps it."""

    patience: int
    counter: int  # evaluations in a row without improvement, when the state was saved
    threshold: float | None = None

    @property
    def stopped(self) -> bool:
        """The callback ended training: its counter reached its patience."""
        return self.patience > 0 and self.counter >= self.patience


def _early_stopping(callbacks: Any) -> EarlyStopping | None:
    found = as_dict(callbacks).get("EarlyStoppingCallback")
    # One callback of a kind is an object; several are a list of them.
    state = as_dict(found[-1] if isinstance(found, list) and found else found)
    args, attributes = as_dict(state.get("args")), as_dict(state.get("attributes"))
    patience = as_int(args.get("early_stopping_patience"))
    counter = as_int(attributes.get("early_stopping_patience_counter"))
    if patience is None or counter is None:
        return None
    return EarlyStopping(patience, counter, as_float(args.get("early_stopping_threshold")))


@dataclass(frozen=True)
class TrainerState:
    """What the dashboard uses of a `trainer_state.json`."""

    global_step: int | None
    max_steps: int | None
    best_model_checkpoint: str | None
    best_global_step: int | None
    history: Mapping[int, Entry]  # its log_history, merged per step
    best_metric: float | None = None  # the value of the metric the trainer picks its best by
    early_stopping: EarlyStopping | None = None

    def source(self, path: Path) -> Source:
        return Source(path, shapes_of(self.history), self.history)

    @property
    def finished(self) -> bool:
        return bool(self.max_steps and self.global_step is not None) and (
            self.global_step >= self.max_steps  # type: ignore[operator]
        )

    @property
    def ended(self) -> bool:
        """Training returned: the step count was reached, or `train()` logged its closing
        summary (`train_runtime`; early stopping ends before `max_steps`)."""
        last = max(self.history, default=None)
        return self.finished or (last is not None and "train_runtime" in self.history[last])


def checkpoint_steps(folder: Path | str, root: Path) -> list[int]:
    """Steps of the `checkpoint-N` folders in `folder`, ascending (a settled listing reused)."""
    return list(listed_steps(folder, root))


def listed_steps(folder: Path | str, root: Path) -> tuple[int, ...]:
    """`checkpoint_steps` as the listing keeps them: a settled folder's is the same tuple each
    walk, which a run keeps rather than a copy (a thousand runs a walk)."""
    steps = listing(str(folder), root, "checkpoints", lambda f: _scan_steps(f, root))
    return steps if steps is not None else ()


def _scan_steps(folder: str, root: Path) -> tuple[tuple[int, ...], bool]:
    """The folder's checkpoint steps, and whether any entry is a link."""
    found = scan(folder, root, "dir", CHECKPOINT_NAME.fullmatch)
    steps = sorted([int(e.name[_NUMBER_AT:]) for e in found.entries])
    return tuple(steps), found.linked


def build_checkpoints(
    history: History,
    steps: Iterable[int],
    folder: Path,
    final: tuple[Path, str] | None,
    final_step: int | None = None,
) -> list[Checkpoint]:
    """The final model (its path and kind, when there is one) first, then checkpoints by step."""
    result = []
    final_point: tuple[int | None, Point] | None = None
    if final is not None:
        step = final_step if final_step is not None else history.last_step
        final_point = (step, history.at(step))
        result.append(Checkpoint(FINAL_MODEL, step, True, final[0], final_point[1], final[1]))
    join = child_joiner(folder)  # one run's 20 checkpoints: `/` parses each name
    for step in steps:
        name = f"checkpoint-{step}"
        # The last checkpoint is most often at the final model's step: one Point for both.
        point = final_point[1] if final_point and final_point[0] == step else history.at(step)
        result.append(Checkpoint(name, step, False, join(name), point))
    return result


def _state(data: bytes) -> TrainerState | None:
    obj = loads_lenient(data)
    if not isinstance(obj, dict):
        return None
    history: dict[int, Entry] = {}
    for record in as_list(obj.get("log_history")):
        parsed = parse_obj(record)
        if parsed is not None:
            merge_into(history, *parsed)
    return TrainerState(
        global_step=as_int(obj.get("global_step")),
        max_steps=as_int(obj.get("max_steps")),
        best_model_checkpoint=as_str(obj.get("best_model_checkpoint")),
        best_global_step=as_int(obj.get("best_global_step")),
        history=history,
        best_metric=as_float(obj.get("best_metric")),
        early_stopping=_early_stopping(obj.get("stateful_callbacks")),
    )


def read_trainer_state(folder: Path, root: Path) -> TrainerState | None:
    """The `trainer_state.json` in `folder` (a checkpoint, or a run saved with save_state())."""
    return file_cache.get(folder / "trainer_state.json", root, "trainer_state", _state)


LFS_POINTER = b"version https://git-lfs.github.com/spec/"


def state_problem(folder: Path, root: Path) -> str | None:
    """Why the `trainer_state.json` in `folder` gave nothing, when it is there: a clone that
    fetched Git LFS pointers instead of files, or not a trainer state at all."""
    f = open_in(folder / "trainer_state.json", root)
    if f is None:
        return None
    with f:
        head = f.read(len(LFS_POINTER))
    if head == LFS_POINTER:
        return "is a Git LFS pointer, not the file: fetch it with git lfs pull"
    if read_trainer_state(folder, root) is None:
        return "is not a trainer state (not JSON, or not an object)"
    return None


def newest_trainer_state(folder: Path, steps: Sequence[int], root: Path) -> TrainerState | None:
    """The state of the newest checkpoint that has one (the newest may still be being written)."""
    for step in reversed(steps):
        state = read_trainer_state(folder / f"checkpoint-{step}", root)
        if state is not None:
            return state
    return None


# A trainer_state.json ends with the keys after log_history (HF writes them sorted): the
# last log entry and max_steps are in its last few kilobytes.
STATE_TAIL_BYTES = 8192
_MAX_STEPS = re.compile(rb'"max_steps":\s*(\d{1,18})')
_LAST_ENTRY = re.compile(rb'(\{[^{}]*\})\s*\]\s*,\s*"[a-z_]+"\s*:')


def state_tail(folder: Path, root: Path) -> tuple[int | None, tuple[int, Entry] | None] | None:
    """(max_steps, the last log entry) of the `trainer_state.json` in `folder`, from its last
    few kilobytes rather than a parse of its whole history; None when it cannot be read."""
    f = open_in(folder / "trainer_state.json", root)
    if f is None:
        return None
    with f:
        try:
            size = os.fstat(f.fileno()).st_size
            tail = os.pread(f.fileno(), STATE_TAIL_BYTES, max(0, size - STATE_TAIL_BYTES))
        except OSError:
            return None
    found = _MAX_STEPS.search(tail)
    entry = _LAST_ENTRY.search(tail)
    return (
        int(found.group(1)) if found else None,
        parse_obj(loads_lenient(entry.group(1))) if entry else None,
    )


def disagrees(tail: tuple[int | None, tuple[int, Entry] | None], newest: TrainerState) -> bool:
    """A checkpoint's own state is another run's than the newest: another max_steps, or
    another value logged at a step both have."""
    max_steps, last = tail
    if last is None:
        return False  # nothing logged: no run to tell apart (a state written by hand)
    if max_steps is not None and newest.max_steps is not None and max_steps != newest.max_steps:
        return True
    step, values = last
    theirs = newest.history.get(step, {})
    return any(
        k in theirs and theirs[k] != v and not (theirs[k] != theirs[k] and v != v)  # NaN
        for k, v in values.items()
    )


def checkpoint_basename(path: str) -> str:
    """`best_model_checkpoint` holds a training-time path, possibly from Windows."""
    return re.split(r"[\\/]", path.rstrip("\\/"))[-1]


def read_adapter_config(checkpoint_dir: Path, root: Path) -> dict[str, Any] | None:
    if not checkpoint_dir.is_dir():
        return None  # a single-file checkpoint has no adapter_config.json
    return read_json_object(checkpoint_dir / "adapter_config.json", root)


def adapter_summary(adapter: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The adapter fields pages show, shape-checked."""
    if not adapter:
        return None
    modules = adapter.get("target_modules")
    return {
        "base_model": as_str(adapter.get("base_model_name_or_path")),
        "peft_type": as_str(adapter.get("peft_type")),
        "r": as_whole(adapter.get("r")),
        "lora_alpha": as_whole(adapter.get("lora_alpha")),
        "lora_dropout": adapter.get("lora_dropout")
        if type(adapter.get("lora_dropout")) in (int, float)
        else None,
        "target_modules": modules
        if isinstance(modules, str)
        else [m for m in as_list(modules) if isinstance(m, str)],
        "auto_mapping": as_dict(adapter.get("auto_mapping")) or None,
    }


def has_saved_model(run_dir: Path, names: Iterable[str] | None = None) -> bool:
    """A model saved at the top of the run folder (HF's own layout, `save_model(output_dir)`),
    in any shape `is_model_file` knows; `names`: the folder's entries, when already listed."""
    if names is None:
        try:
            names = os.listdir(run_dir)
        except OSError:
            return False
    return any(is_model_file(n) and os.path.isfile(run_dir / n) for n in names)


def list_files(checkpoint: Path, root: Path, top_only: bool = False) -> list[FileInfo]:
    """Files of a checkpoint with their sizes, leaving out links that leave the root.

    `top_only`: a model saved at the top of a run folder: its files, not the run's subfolders.
    """
    files = []
    if link_leaves(checkpoint, root):
        return []
    if checkpoint.is_file():  # a single-file checkpoint (MLX .npz)
        try:
            return [FileInfo(checkpoint.name, checkpoint.stat().st_size)]
        except OSError:
            return []
    for entry in scan(checkpoint, root).entries:
        try:
            if entry.is_dir():
                if not top_only:
                    files.append(FileInfo(entry.name + "/", _tree_size(Path(entry.path), root)))
            elif entry.is_file():
                files.append(FileInfo(entry.name, entry.stat().st_size))
        except OSError:
            continue
    files.sort(key=lambda f: f.name)
    return files


def disk_sizes(checkpoints: Iterable[Checkpoint], root: Path) -> dict[str, int]:
    """Bytes each checkpoint takes on disk, by name; links out of the root are not counted."""
    return {
        c.name: sum(f.size for f in list_files(c.path, root, c.kind == "top")) for c in checkpoints
    }


def _tree_size(path: Path, root: Path) -> int:
    total = 0
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            p = os.path.join(dirpath, name)
            try:
                if link_leaves(p, root):
                    continue
                total += os.stat(p).st_size
            except OSError:
                continue
    return total
