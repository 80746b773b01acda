"""Checkpoint folders of a run, the metrics at each one, and their files."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .logindex import read_summary
from .logs import Entry, History
from .paths import file_cache, is_inside, loads_lenient, read_json_object, realpath
from .values import as_int

CHECKPOINT_NAME = re.compile(r"checkpoint-(\d{1,18})")  # steps stay within int64
FINAL_MODEL = "final_model"
# A folder changed this recently may change again within the filesystem's clock tick, unseen
# by its mtime (git's "racily clean" entries): its listing is not reused until it settles.
SETTLED_S = 2.0
_listings: dict[tuple[str, str], tuple[tuple[int, int], tuple[int, ...]]] = {}


@dataclass(frozen=True)
class Checkpoint:
    name: str
    step: int | None
    is_final: bool
    run_dir: Path
    metrics: Mapping[str, float]
    metrics_step: int | None
    # Where a layout keeps it elsewhere (MLX: a .npz file); else derived from run_dir.
    location: Path | None = None

    @property
    def path(self) -> Path:
        # Built on demand: a run list touches tens of thousands of checkpoints.
        if self.location is not None:
            return self.location
        if self.is_final:
            return self.run_dir / FINAL_MODEL
        return self.run_dir / "checkpoints" / self.name


@dataclass(frozen=True)
class FileInfo:
    name: str
    size: int


@dataclass(frozen=True)
class TrainerState:
    """The few fields of `trainer_state.json` the dashboard uses."""

    global_step: int | None
    max_steps: int | None
    best_model_checkpoint: str | None


def checkpoint_steps(run_dir: Path, root: Path) -> list[int]:
    """Steps of the `checkpoints/checkpoint-N` folders, ascending.

    A settled folder's listing is reused while its inode and mtime stay the same: adding,
    removing or renaming a checkpoint changes them. Links are re-checked every time.
    """
    folder = run_dir / "checkpoints"
    try:
        st = os.stat(folder)
    except OSError:
        return []
    key, sig = (str(folder), str(root)), (st.st_ino, st.st_mtime_ns)
    hit = _listings.get(key)
    if hit is not None and hit[0] == sig:
        return list(hit[1])
    steps, linked = _scan_steps(folder, root)
    if not linked and time.time() - st.st_mtime > SETTLED_S:
        _listings[key] = (sig, tuple(steps))
    return steps


def clear_listings() -> None:
    _listings.clear()


def _scan_steps(folder: Path, root: Path) -> tuple[list[int], bool]:
    """The folder's checkpoint steps, and whether any entry is a link."""
    steps = []
    linked = False
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return [], False
    for entry in entries:
        m = CHECKPOINT_NAME.fullmatch(entry.name)
        if m is None:
            continue
        try:
            if not entry.is_dir():
                continue
        except OSError:
            continue
        if entry.is_symlink():
            linked = True
            if not is_inside(entry.path, root):
                continue
        steps.append(int(m.group(1)))
    steps.sort()
    return steps, linked


def has_final_model(run_dir: Path, root: Path) -> bool:
    path = run_dir / FINAL_MODEL
    return path.is_dir() and (not path.is_symlink() or is_inside(path, root))


def metrics_at(history: History, step: int | None) -> tuple[Entry, int | None]:
    """The merged entry at `step`, or at the nearest earlier logged step."""
    found = history.nearest(step)
    if found is None:
        return {}, None
    return history.entries.get(found, {}), found


def build_checkpoints(
    run_dir: Path, history: History, steps: list[int], final: bool
) -> list[Checkpoint]:
    """Final model first, then checkpoints by step."""
    result = []
    if final:
        last = history.last_step
        metrics, metrics_step = metrics_at(history, last)
        result.append(Checkpoint(FINAL_MODEL, last, True, run_dir, metrics, metrics_step))
    for step in steps:
        metrics, metrics_step = metrics_at(history, step)
        name = f"checkpoint-{step}"
        result.append(Checkpoint(name, step, False, run_dir, metrics, metrics_step))
    return result


def list_checkpoints(run_dir: Path, root: Path | None = None) -> list[Checkpoint]:
    root = root or realpath(run_dir)
    steps = checkpoint_steps(run_dir, root)
    history = read_summary(run_dir, root, steps)
    return build_checkpoints(run_dir, history, steps, has_final_model(run_dir, root))


def _state_summary(data: bytes) -> TrainerState | None:
    obj = loads_lenient(data)
    if not isinstance(obj, dict):
        return None
    best_ckpt = obj.get("best_model_checkpoint")
    return TrainerState(
        global_step=as_int(obj.get("global_step")),
        max_steps=as_int(obj.get("max_steps")),
        best_model_checkpoint=best_ckpt if isinstance(best_ckpt, str) and best_ckpt else None,
    )


def read_trainer_state(checkpoint_dir: Path) -> TrainerState | None:
    return file_cache.get(checkpoint_dir / "trainer_state.json", "trainer_state", _state_summary)


def newest_trainer_state(run_dir: Path, steps: list[int]) -> TrainerState | None:
    """The state of the newest checkpoint that has one (the newest may still be being written)."""
    for step in reversed(steps):
        state = read_trainer_state(run_dir / "checkpoints" / f"checkpoint-{step}")
        if state is not None:
            return state
    return None


def checkpoint_basename(path: str) -> str:
    """`best_model_checkpoint` holds a training-time path, possibly from Windows."""
    return re.split(r"[\\/]", path.rstrip("\\/"))[-1]


def read_adapter_config(checkpoint_dir: Path) -> dict[str, Any] | None:
    return read_json_object(checkpoint_dir / "adapter_config.json")


def list_files(checkpoint_dir: Path, root: Path) -> list[FileInfo]:
    """Files in a checkpoint folder with their sizes, leaving out links that leave the root."""
    files = []
    if checkpoint_dir.is_file():  # a single-file checkpoint (MLX .npz)
        try:
            return [FileInfo(checkpoint_dir.name, checkpoint_dir.stat().st_size)]
        except OSError:
            return []
    try:
        entries = list(os.scandir(checkpoint_dir))
    except OSError:
        return []
    for entry in entries:
        try:
            if entry.is_symlink() and not is_inside(entry.path, root):
                continue
            st = entry.stat()
        except OSError:
            continue
        if entry.is_dir():
            files.append(FileInfo(entry.name + "/", _tree_size(Path(entry.path), root)))
        else:
            files.append(FileInfo(entry.name, st.st_size))
    files.sort(key=lambda f: f.name)
    return files


def disk_sizes(checkpoints: Iterable[Checkpoint], root: Path) -> dict[str, int]:
    """Bytes each checkpoint takes on disk, by name; links out of the root are not counted."""
    return {c.name: sum(f.size for f in list_files(c.path, root)) for c in checkpoints}


def _tree_size(path: Path, root: Path) -> int:
    total = 0
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            p = os.path.join(dirpath, name)
            try:
                if os.path.islink(p) and not is_inside(p, root):
                    continue
                total += os.stat(p).st_size
            except OSError:
                continue
    return total
