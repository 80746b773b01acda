"""Trainers and their runs: found by layout, ordered by start time, with status and detail.

Where runs are found:
- `Trainers/<platform>_<type>/<type>_output_<platform>/<run>/` (the upstream RTX trainers) and
  `Trainers/<type>/<type>_output/<run>/` (its later layout): a trainer per output folder;
- `Trainers/<name>/` holding an MLX trainer's log (see mlx.py);
- each folder of `Workspace.run_dirs`: a Hugging Face output folder (a run), or a folder of them.
A run folder keeps its checkpoints in `checkpoints/checkpoint-N/` or, as every HF Trainer writes
by itself, in `checkpoint-N/` at its top. A folder is a run once it has a checkpoint, a final or
saved model, a `trainer_state.json`, or a training log (a run that has only just started).
"""

from __future__ import annotations

import functools
import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from . import caches, detailstore, mlx
from . import header as run_header
from .checkpoints import (
    CHECKPOINT_NAME,
    FINAL_MODEL,
    Checkpoint,
    TrainerState,
    build_checkpoints,
    checkpoint_basename,
    disagrees,
    has_saved_model,
    listed_steps,
    newest_trainer_state,
    read_adapter_config,
    read_trainer_state,
    state_problem,
    state_tail,
)
from .header import RunHeader
from .logindex import indexer, read_history, read_summary
from .logs import (
    LLAMA_FACTORY_LOG,
    History,
    Source,
    log_files,
    log_paths,
    log_reached_total,
    shapes_of,
)
from .metrics import type_from_metrics
from .paths import (
    dir_entry_inside,
    file_cache,
    file_key,
    is_inside,
    is_safe_name,
    link_leaves,
    read_json_object,
    realpath,
    scan,
    stat_key,
)
from .ranking import Ranking, RankRequest, rank, trainer_metric
from .values import as_str, as_whole, finite
from .yamlfile import front_matter, read_mapping

OUTPUT_DIR = re.compile(r"(?P<type>[A-Za-z0-9]+)_output(?:_(?P<platform>.+))?")
RUN_STAMP = re.compile(r"(\d{8}_\d{6})")
RUNNING_WINDOW_S = 600.0
STATUSES = ("running", "completed", "stopped")
STATE = "trainer_state.json"
LINEAGE = "training_lineage.json"
LLAMA_FACTORY_ARGS = "training_args.yaml"
# `trainer.save_metrics("train", …)` at the end of training: train_results.json and the
# all_results.json it merges into.
RESULTS_FILES = ("train_results.json", "all_results.json")
# The files at a run folder's top that its detail reads when they are there: the walk's listing
# of the folder says which are, so a detail does not look for the others one by one.
TOP_FILES = (STATE, LINEAGE, LLAMA_FACTORY_ARGS, LLAMA_FACTORY_LOG, *RESULTS_FILES)
_TOP_BITS = {name: 1 << i for i, name in enumerate(TOP_FILES)}


@dataclass(frozen=True)
class Workspace:
    """What discovery reads, and how recent a write means "running"."""

    root: Path
    run_dirs: tuple[Path, ...] = ()  # more output folders, each its own trainer and confinement
    running_window: float = RUNNING_WINDOW_S
    # Seconds a walk's finished and stopped runs may be reused (training runs are read again
    # each time), while no trainer folder changes: many open pages polling share one walk.
    walk_reuse: float = 0.0

    @classmethod
    def at(
        cls,
        root: Path | str,
        running_window: float = RUNNING_WINDOW_S,
        run_dirs: tuple[Path | str, ...] = (),
        walk_reuse: float = 0.0,
    ) -> Workspace:
        return cls(realpath(root), tuple(realpath(d) for d in run_dirs), running_window, walk_reuse)


@dataclass(frozen=True)
class Trainer:
    id: str
    type: str  # "" when its runs' types differ (a folder of HF output folders)
    platform: str
    output_dir: Path
    root: Path  # nothing outside it is read for this trainer's runs
    # "hf": a folder per run; "run": output_dir is itself the one run; "mlx": segments of a log
    layout: str = "hf"


@dataclass(frozen=True)
class Run:
    trainer: Trainer
    name: str
    path: Path
    type: str
    started_at: datetime
    status: str
    checkpoint_steps: tuple[int, ...]
    checkpoints_dir: Path
    # The final model's path and kind ("folder", "top": files at the run's top, "file"), or None.
    final: tuple[Path, str] | None
    # What a change on disk would change: checkpoints, final model, every file the pages show.
    signature: tuple = field(default=(), compare=False, repr=False)
    # The Unix time of its newest log or checkpoint write, known for unfinished runs: what
    # `status` compared with the running window, and what a stopped run's page shows.
    last_write: float | None = field(default=None, compare=False)
    # Those of TOP_FILES the walk listed at the run folder's top, a bit each (a small int, not
    # one more object per run for the garbage collector); None when not known.
    top_files: int | None = field(default=None, compare=False, repr=False)
    # "<trainer>/<run>", made once: pages ask it of every run of a workspace on each request.
    id: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", f"{self.trainer.id}/{self.name}")

    @property
    def has_final_model(self) -> bool:
        return self.final is not None

    def may_have(self, name: str) -> bool:
        """Whether `name` (one of TOP_FILES) can be at the run folder's top: the walk listed
        it there, or the walk's listing is not known. A file added since is read once the
        next walk lists it (a state or lineage changes the run's signature)."""
        return self.top_files is None or bool(self.top_files >> TOP_FILES.index(name) & 1)


@dataclass(frozen=True)
class RunDetail:
    """A run with everything its page and its JSON show."""

    run: Run
    history: History
    checkpoints: tuple[Checkpoint, ...]
    ranking: Ranking
    header: RunHeader
    lineage: dict[str, Any] | None
    global_step: int | None = None  # from the newest trainer_state.json
    # Not read yet: only what the walk saw (a first visit to a large workspace).
    pending: bool = False

    @property
    def best(self) -> Checkpoint | None:
        return next((c for c in self.checkpoints if c.name == self.ranking.best), None)

    @property
    def step(self) -> int | None:
        """How far training got: the last logged step, or the trainer's own count."""
        steps = [s for s in (self.history.last_step, self.global_step) if s is not None]
        return max(steps) if steps else None

    @property
    def unread_states(self) -> tuple[tuple[str, str], ...]:
        """Where a run shows no metrics: each `trainer_state.json` that is there but could not
        be read, and why: ("checkpoint-1/trainer_state.json", "is a Git LFS pointer …")."""
        if self.history.sources or self.run.trainer.layout == "mlx":
            return ()
        run = self.run
        folders = [(run.path, "")] + [
            (run.checkpoints_dir / f"checkpoint-{s}", f"checkpoint-{s}/")
            for s in reversed(run.checkpoint_steps)
        ]
        found = []
        for folder, shown in folders:
            problem = state_problem(folder, run.trainer.root)
            if problem:
                found.append((f"{shown}trainer_state.json", problem))
        return tuple(found)

    @property
    def status_reason(self) -> str | None:
        """Why a stopped run counts as stopped, beyond the clock: a sentence pages, the JSON
        and the CLI print as written (None for a running or completed run)."""
        return stopped_reason(self) if self.run.status == "stopped" else None

    @property
    def best_score(self) -> float | None:
        return self.ranking.score_of(self.checkpoints, self.ranking.best or "")

    @property
    def checkpoint_count(self) -> int:
        """Checkpoints saved, the final model aside (every page says "12 + final"); an MLX
        trainer's kept best copy counts, as a row of its own."""
        return sum(not c.is_final for c in self.checkpoints)

    @property
    def base_model(self) -> str | None:
        return self.header.base_model

    @property
    def max_steps(self) -> int | None:
        return self.header.max_steps

    @property
    def progress(self) -> float | None:
        return progress(self.step, self.max_steps)

    @property
    def summary(self) -> RunSummary:
        """What a run list's row shows of this detail."""
        return _summary(self, self.status_reason)


def progress(step: int | None, max_steps: int | None) -> float | None:
    """The share of `max_steps` done, when both are known."""
    if step is None or not max_steps:
        return None
    return min(step / max_steps, 1.0)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a run list's row (`run_summary_json`, the CLI's table) shows of a run's detail.

    Kept beside the detail in the index store (`kept_fields`), so a list of every run decodes
    no detail: no log entry, checkpoint or path, only these few values a run.
    """

    run: Run
    base_model: str | None
    checkpoint_count: int
    step: int | None
    max_steps: int | None
    best_name: str | None
    best_step: int | None
    best_score: float | None
    rule: str
    label: str
    skipped: int
    # `stopped_reason`'s sentence, shown while the run counts as stopped (the clock decides).
    stop_reason: str | None

    @property
    def progress(self) -> float | None:
        return progress(self.step, self.max_steps)

    @property
    def status_reason(self) -> str | None:
        return self.stop_reason if self.run.status == "stopped" else None

    def kept_fields(self) -> tuple[Any, ...]:
        """Every field but the run: plain values the index store writes."""
        return tuple(getattr(self, f.name) for f in fields(self)[1:])


def _summary(d: RunDetail, stop_reason: str | None) -> RunSummary:
    best = d.best
    return RunSummary(
        d.run,
        d.base_model,
        d.checkpoint_count,
        d.step,
        d.max_steps,
        None if best is None else best.name,
        None if best is None else best.step,
        d.best_score,
        d.ranking.rule,
        d.ranking.label,
        d.history.skipped,
        stop_reason,
    )


def status(completed: bool, last_write: float | None, window: float, now: float | None) -> str:
    """completed when the trainer says so; running while it wrote within `window` seconds."""
    if completed:
        return "completed"
    now = time.time() if now is None else now
    if last_write is not None and now - last_write <= window:
        return "running"
    return "stopped"


def stopped_reason(d: RunDetail) -> str:
    """Why a run that stopped writing did not finish, or that it was stopped on purpose."""
    run = d.run
    if run.trainer.layout != "mlx":
        _top, newest = _states(run)
        early = newest.early_stopping if newest is not None else None
        if early is not None and early.stopped:
            by = f" by {d.ranking.metric}" if d.ranking.rule == "trainer" else ""
            threshold = f", threshold {early.threshold:g}" if early.threshold else ""
            at = f" at step {newest.global_step}" if newest and newest.global_step else ""
            return (
                f"It stopped early, on purpose: its EarlyStoppingCallback ended training{at} "
                f"after {early.counter} evaluations in a row without improvement{by} "
                f"(early_stopping_patience {early.patience}{threshold}). It did not crash."
            )
        missing = (
            "It has no final_model/, saved model, training_lineage.json, train_results.json, "
            "trainer_state.json that reached max_steps or holds train()'s closing summary, or "
            "trainer_log.jsonl line at its total_steps"
        )
    else:
        missing = (
            "Its log has no “Training complete” line and there is no final_model/lora_adapters.npz"
        )
    last = "reached its last step but " if d.progress == 1 else ""
    resume = " If it crashed, resume it from its newest checkpoint." if d.checkpoints else ""
    return f"{missing}, so it {last}did not finish.{resume}"


def list_trainers(ws: Workspace) -> list[Trainer]:
    """Every trainer of the workspace and of its run folders; ids are unique."""
    trainers = _workspace_trainers(ws.root)
    for folder in ws.run_dirs:
        trainers += _run_dir_trainers(folder)
    seen: set[str] = set()
    unique = []
    for t in trainers:
        name, n = t.id, 2
        while name in seen:  # two run folders with one name: both listed, told apart
            name, n = f"{t.id}-{n}", n + 1
        seen.add(name)
        unique.append(replace(t, id=name) if name != t.id else t)
    unique.sort(key=lambda t: t.id)
    return unique


def _workspace_trainers(root: Path) -> list[Trainer]:
    base = root / "Trainers"
    if link_leaves(base, root):
        return []
    trainers = []
    for entry in _scandirs(base, root):
        found = False
        for child in _scandirs(Path(entry.path), root):
            m = OUTPUT_DIR.fullmatch(child.name)
            if m is None:
                continue
            kind, platform = m["type"].lower(), m["platform"] or ""
            if entry.name in {f"{platform}_{m['type']}", m["type"]}:
                found = True
                trainers.append(Trainer(entry.name, kind, platform, Path(child.path), root))
        if not found and mlx.is_mlx_trainer(Path(entry.path)):
            trainers.append(Trainer(entry.name, "mlx", "mac", Path(entry.path), root, "mlx"))
    return trainers


def _run_dir_trainers(folder: Path) -> list[Trainer]:
    """A configured run folder: one HF output folder (a run), or a folder of them."""
    if not folder.is_dir() or not is_safe_name(folder.name):
        return []
    try:
        children = {e.name: e for e in os.scandir(folder)}
    except OSError:
        return []
    layout = "run" if _looks_like_run(folder, children) else "hf"
    return [Trainer(folder.name, "", "", folder, folder, layout)]


# What makes a folder a run, as a run folder's note says it.
RUN_MARKS = (
    "checkpoint-N/, checkpoints/, final_model/, trainer_state.json, a saved model "
    "(model.safetensors, adapter_model.safetensors, …), trainer_log.jsonl or "
    "logs/training_*.jsonl"
)


def run_dir_problems(ws: Workspace) -> tuple[str, ...]:
    """Each configured run folder (TUNER_RUN_DIRS) that gives no run, and why, as a sentence."""
    if not ws.run_dirs:
        return ()
    trainers = {t.output_dir: t for t in list_trainers(ws) if t.output_dir in ws.run_dirs}
    found = []
    for folder in ws.run_dirs:
        trainer = trainers.get(folder)
        if trainer is None:
            found.append(f"{folder}: {_unusable(folder)}.")
        elif not trainer_runs(trainer, ws):
            found.append(
                f"{folder}: no training run in it. A run is a folder with {RUN_MARKS}; it has "
                "none of them, at its top or in a folder in it."
            )
    return tuple(found)


def _unusable(folder: Path) -> str:
    if not folder.exists():
        return "it does not exist"
    if not folder.is_dir():
        return "it is not a folder"
    if not is_safe_name(folder.name):
        return "its name cannot be part of a page's address: rename it"
    return "it cannot be read"


def _looks_like_run(path: Path, children: dict[str, os.DirEntry[str]]) -> bool:
    return (
        any(CHECKPOINT_NAME.fullmatch(n) for n in children)
        or "checkpoints" in children
        or FINAL_MODEL in children
        or STATE in children
        or has_saved_model(path, children)
        or "logs" in children
        or LLAMA_FACTORY_LOG in children
    )


def get_trainer(ws: Workspace, trainer_id: str) -> Trainer | None:
    if not is_safe_name(trainer_id):
        return None
    return next((t for t in list_trainers(ws) if t.id == trainer_id), None)


def _scandirs(path: Path, root: Path) -> list[os.DirEntry[str]]:
    return scan(path, root, "dir").entries


def started_at(name: str, mtime: float) -> datetime:
    m = RUN_STAMP.search(name)
    stamp = _parse_stamp(m.group(1)) if m else None
    return stamp or datetime.fromtimestamp(mtime)


@functools.lru_cache(maxsize=16384)
def _parse_stamp(stamp: str) -> datetime | None:
    """`datetime.strptime(stamp, "%Y%m%d_%H%M%S")` for RUN_STAMP's digits, or None."""
    # strptime is the slowest step of a warm walk (its first call imports and builds its
    # locale tables: 9 ms), and run names never change. For 8 + 6 ASCII digits its fields
    # are all two-digit (four for the year), so it accepts exactly what datetime() does.
    # Other digits \d matches are read by strptime itself: it takes some of them, not all.
    try:
        if not stamp.isascii():
            return datetime.strptime(stamp, "%Y%m%d_%H%M%S")
        return datetime(
            int(stamp[0:4]),
            int(stamp[4:6]),
            int(stamp[6:8]),
            int(stamp[9:11]),
            int(stamp[11:13]),
            int(stamp[13:15]),
        )
    except ValueError:
        return None


def _mtime(path: Path | str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def _entry_mtime(entry: os.DirEntry[str] | None) -> float:
    try:
        return entry.stat().st_mtime if entry is not None else 0.0
    except OSError:
        return 0.0


def read_run(
    trainer: Trainer, path: Path, ws: Workspace, now: float | None = None, name: str | None = None
) -> Run | None:
    """A run folder, or None when nothing in it says a run happened there."""
    root = trainer.root
    try:
        children = {e.name: e for e in os.scandir(path)}
    except OSError:
        return None
    if dir_entry_inside(children.get("checkpoints"), root):
        folder = os.path.join(path, "checkpoints")
        steps = listed_steps(folder, root)
    else:
        folder = str(path)
        steps = tuple(
            sorted(
                int(m.group(1))
                for n, e in children.items()
                if (m := CHECKPOINT_NAME.fullmatch(n)) and dir_entry_inside(e, root)
            )
        )
    final: tuple[Path, str] | None = None
    if dir_entry_inside(children.get(FINAL_MODEL), root):
        final = (path / FINAL_MODEL, "folder")
    elif has_saved_model(path, children):
        final = (path, "top")
    # Strings, not Paths, on this walk's hot path: it runs for every run on every request.
    here = str(path)
    logs = []
    for log in log_paths(here, root, LLAMA_FACTORY_LOG in children):
        try:
            st = os.stat(log)
        except OSError:
            continue
        # The version changes when a background pass corrects a first answer of this log.
        logs.append((log, stat_key(st), indexer.version(log)))
    has_lineage, has_state = LINEAGE in children, STATE in children
    # HF's example scripts and LLaMA-Factory write their metrics files when training ends.
    has_lineage = has_lineage or not children.keys().isdisjoint(RESULTS_FILES)
    if not steps and final is None and not logs and not has_state:
        return None
    newest = os.path.join(folder, f"checkpoint-{steps[-1]}") if steps else None
    completed = final is not None or has_lineage
    if not completed and has_state:
        # save_state() at the end of training, or a checkpoint's state copied up (a real DPO
        # run's says step 75 of 100 and has no closing summary): only an ended one counts. One
        # that does not read (half-written, a Git LFS pointer) says nothing either way.
        top = read_trainer_state(path, root)
        completed = top is not None and top.ended
    last_write = None
    if not completed:
        state = newest_trainer_state(Path(folder), steps, root)
        # HF's own layout has no final model of its own: the trainer's count says it finished.
        completed = state is not None and state.finished
    if not completed and LLAMA_FACTORY_LOG in children:
        # LLaMA-Factory's log counts its steps: its last line at total_steps finished.
        completed = log_reached_total(os.path.join(here, LLAMA_FACTORY_LOG), root)
    if not completed:
        # Only an unfinished run's status needs its checkpoints' times.
        last_write = max(
            [log[1][3] / 1e9 for log in logs]
            + [
                _entry_mtime(children.get("checkpoints")) if folder != here else _mtime(here),
                _mtime(newest) if newest else 0.0,
            ]
        )
    run_name = name or path.name
    return Run(
        trainer=trainer,
        name=run_name,
        path=path,
        type=trainer.type or _infer_type(path, Path(folder), steps, root),
        started_at=started_at(run_name, 0.0 if RUN_STAMP.search(run_name) else _mtime(path)),
        status=status(completed, last_write, ws.running_window, now),
        checkpoint_steps=steps,  # the listing's own tuple, when it was kept
        checkpoints_dir=path / "checkpoints" if folder != here else path,
        final=final,
        last_write=last_write,
        top_files=sum(_TOP_BITS[n] for n in children.keys() & _TOP_BITS.keys()),
        signature=(
            steps,
            final,
            tuple(logs),
            # Every metadata file a page shows: an edit or a finished write shows at once.
            file_key(os.path.join(here, LINEAGE)) if has_lineage else None,
            file_key(os.path.join(here, STATE)) if has_state else None,
            file_key(os.path.join(newest, STATE)) if newest else None,
            file_key(
                os.path.join(str(final[0]) if final else newest or here, "adapter_config.json")
            ),
        ),
    )


def _infer_type(path: Path, folder: Path, steps: Sequence[int], root: Path) -> str:
    """A run's method where its folder names none: its lineage, else its logged metrics."""
    lineage = read_json_object(path / LINEAGE, root)
    if lineage is not None:
        named = as_str(lineage.get("training_type")) or as_str(lineage.get("training_method"))
        if named and named.isalnum():
            return named.lower()
    state = read_trainer_state(path, root) or newest_trainer_state(folder, steps, root)
    names: set[str] = set()
    if state is not None:
        for entry in state.history.values():
            names.update(entry)
    if not names:
        names.update(_log_tail_names(path, root))
    return type_from_metrics(names)


def _log_tail_names(path: Path, root: Path) -> set[str]:
    """Metric names of the newest log's last lines, without reading the whole log."""
    files = log_files(path, root)
    if not files:
        return set()
    idx = indexer.index(files[-1], root)
    names: set[str] = set()
    for keys, _ in idx.shapes if idx else ():
        names.update(keys)
    return names


def list_runs(ws: Workspace, run_type: str | None = None, now: float | None = None) -> list[Run]:
    """Runs of every trainer (or of one training type), newest start first."""
    runs = _walk(ws, now)
    if run_type:
        runs = [r for r in runs if r.type == run_type.lower()]
    return runs


_walks: dict[Workspace, tuple[float, tuple, list[Run]]] = {}
_walks_lock = threading.Lock()


def _walk(ws: Workspace, now: float | None) -> list[Run]:
    trainers = list_trainers(ws)
    if ws.walk_reuse <= 0 or now is not None:
        return _walk_all(trainers, ws, now)
    # Adding, removing or renaming a run changes its trainer folder's mtime.
    folders = tuple((t.id, file_key(str(t.output_dir))) for t in trainers)
    with _walks_lock:
        hit = _walks.get(ws)
    if hit is not None and hit[1] == folders and time.monotonic() - hit[0] < ws.walk_reuse:
        by_trainer = {t.id: t for t in trainers}
        fresh: dict[str, Run | None] = {}
        for r in hit[2]:
            if r.status == "running" and r.trainer.layout != "mlx":
                fresh[r.id] = read_run(by_trainer[r.trainer.id], r.path, ws, name=r.name)
        live_mlx = {
            r.trainer.id for r in hit[2] if r.status == "running" and r.trainer.layout == "mlx"
        }
        for t in trainers:
            if t.id in live_mlx:
                fresh |= {r.id: r for r in trainer_runs(t, ws)}
        if not fresh:
            return list(hit[2])
        runs = [r for r in (fresh.get(r.id, r) for r in hit[2]) if r is not None]
        # A run read again keeps its place unless its start moved: 10,000 runs sorted on every
        # request were a page's largest share.
        old = {r.id: r for r in hit[2] if r.id in fresh}
        if any(
            f is not None and i in old and f.started_at != old[i].started_at
            for i, f in fresh.items()
        ):
            runs.sort(key=_newest_first, reverse=True)
        return runs
    runs = _walk_all(trainers, ws, now)
    with _walks_lock:
        _walks[ws] = (time.monotonic(), folders, runs)
    return runs


def _walk_all(trainers: list[Trainer], ws: Workspace, now: float | None) -> list[Run]:
    runs: list[Run] = []
    for trainer in trainers:
        runs.extend(trainer_runs(trainer, ws, now))
    runs.sort(key=_newest_first, reverse=True)
    return runs


def _newest_first(r: Run) -> tuple[Any, ...]:
    return (r.started_at, r.trainer.id, r.name)


def trainer_runs(trainer: Trainer, ws: Workspace, now: float | None = None) -> list[Run]:
    if trainer.layout == "mlx":
        return [_mlx_run(trainer, m, ws, now) for m in mlx.runs(trainer.output_dir, trainer.root)]
    if trainer.layout == "run":
        run = read_run(trainer, trainer.output_dir, ws, now, name=trainer.output_dir.name)
        return [run] if run is not None else []
    runs: list[Run] = []
    for entry in _scandirs(trainer.output_dir, trainer.root):
        if not is_safe_name(entry.name):
            continue  # a name no link can carry is not listed
        run = read_run(trainer, Path(entry.path), ws, now)
        if run is not None:
            runs.append(run)
    return runs


def get_run(ws: Workspace, trainer_id: str, run_name: str, now: float | None = None) -> Run | None:
    trainer = get_trainer(ws, trainer_id)
    if trainer is None or not is_safe_name(run_name):
        return None
    if trainer.layout in ("mlx", "run"):
        return next((r for r in trainer_runs(trainer, ws, now) if r.name == run_name), None)
    path = trainer.output_dir / run_name
    if not path.is_dir() or not is_inside(path, trainer.root):
        return None
    return read_run(trainer, path, ws, now)


def list_checkpoints(run_dir: Path, root: Path | None = None) -> tuple[Checkpoint, ...]:
    """The checkpoints of one run folder, with their metrics; nothing outside `root` is read."""
    folder = realpath(run_dir)
    confined = realpath(root) if root is not None else folder  # as every workspace root is
    trainer = Trainer(folder.parent.name, "", "", folder.parent, confined, "hf")
    run = read_run(trainer, folder, Workspace(confined))
    return detail(run).checkpoints if run is not None else ()


def read_lineage(run_dir: Path, root: Path) -> dict[str, Any] | None:
    return read_json_object(run_dir / LINEAGE, root)


# The adapter fields a header shows, each taken from the newest file that has it.
ADAPTER_FIELDS = ("base_model_name_or_path", "r", "lora_alpha")


def _newest_adapter(run: Run) -> dict[str, Any] | None:
    """The adapter config of the final model, then of each checkpoint newest first, then the
    one at the run folder's top (published outputs often keep it without the weights): each
    field from the newest that has it (a final_model/ config without `r` does not hide the
    rank every checkpoint's has). The base model falls back to a model card's front matter."""
    folders = _model_folders(run)
    merged: dict[str, Any] = {}
    for d in folders:
        adapter = read_adapter_config(d, run.trainer.root)
        if not adapter:
            continue
        if not merged:
            merged = dict(adapter)
        for key in ADAPTER_FIELDS:
            if merged.get(key) is None and adapter.get(key) is not None:
                merged[key] = adapter[key]
        if all(merged.get(k) is not None for k in ADAPTER_FIELDS):
            break
    if not isinstance(merged.get("base_model_name_or_path"), str):
        card = next((b for d in folders if (b := card_base_model(d, run.trainer.root))), None)
        if card is not None:
            merged["base_model_name_or_path"] = card
    return merged or None


def _model_folders(run: Run) -> list[Path]:
    """Where a run's model metadata is, newest first: the final model, each checkpoint, the
    run folder's top."""
    dirs = [run.final[0]] if run.final else []
    dirs += [run.checkpoints_dir / f"checkpoint-{s}" for s in reversed(run.checkpoint_steps)]
    if run.path not in dirs:
        dirs.append(run.path)
    return dirs


def card_base_model(folder: Path, root: Path) -> str | None:
    """The `base_model:` a model card's front matter names (TRL and PEFT write README.md so),
    the first where it lists several."""

    def load(data: bytes) -> str | None:
        found = front_matter(data.decode("utf-8", "replace"))
        base = (found.data or {}).get("base_model") if found is not None else None
        if isinstance(base, list):
            base = next((b for b in base if isinstance(b, str)), None)
        return as_str(base)

    return file_cache.get(folder / "README.md", root, "card_base_model", load)


_memo: dict[str, tuple[tuple, RunDetail]] = {}
# Run id → the signature of a detail an earlier process kept in the store (not read yet).
_kept: dict[str, tuple] = {}
_memo_lock = threading.Lock()


def detail(run: Run, ranking: RankRequest | None = None) -> RunDetail:
    """Everything a run's rows and page show; reused while the run's signature is unchanged.

    A `ranking` request is checked against the metrics the run logged (`RankError`).
    """
    if ranking is not None:
        d = detail(run)
        ranking.check(d.history.metric_names())
        return replace(d, ranking=rank(run.type, d.checkpoints, request=ranking, history=d.history))
    if not run.signature:
        return _mlx_detail(run) if run.trainer.layout == "mlx" else _hf_detail(run)
    with _memo_lock:
        hit = _memo.get(run.id)
    if hit is not None and hit[0] == run.signature:
        # The status can change with the clock alone, so the run itself is always fresh.
        return replace(hit[1], run=run)
    restored = _restored(run)
    if restored is not None:
        d = restored
    else:
        d = _mlx_detail(run) if run.trainer.layout == "mlx" else _hf_detail(run)
        # A training run's signature changes every poll: a row for it would never be read.
        if not d.pending and not d.history.approximate and run.status != "running":
            parts = (d.history, d.checkpoints, d.ranking, d.header, d.lineage, d.global_step)
            # Its stop sentence is kept whatever its status now: whether the run counts as
            # stopped is for the clock to say when the row is read.
            indexer.keep(
                run.trainer.root,
                detailstore.key(run.id),
                detailstore.encode(
                    repr(run.signature), parts, _summary(d, stopped_reason(d)).kept_fields()
                ),
            )
    with _memo_lock:
        _memo[run.id] = (run.signature, d)
    return d


def passing_detail(run: Run) -> RunDetail:
    """`detail(run)`, but a detail kept in the index store is decoded for this call only, not
    kept in memory: for a page that reads a few numbers of every run (10,000 decoded details
    held 300 MB)."""
    with _memo_lock:
        hit = _memo.get(run.id)
    if hit is not None and hit[0] == run.signature and run.signature:
        return replace(hit[1], run=run)
    restored = _restored(run) if run.signature else None
    return restored if restored is not None else detail(run)


def _logs_of(runs: list[Run]) -> list[tuple[Path, Path, tuple[int, ...]]]:
    return [
        (Path(log), r.trainer.root, r.checkpoint_steps)
        for r in runs
        if r.trainer.layout != "mlx"
        for log in log_paths(str(r.path), r.trainer.root, r.may_have(LLAMA_FACTORY_LOG))
    ]


def read_ahead(runs: list[Run]) -> None:
    """Before a command reads these runs' details: their unread logs, read in two processes
    at once where there are two cores (a server reads windows of them instead)."""
    if indexer.background:
        return  # windows of each log answer first: nothing is read ahead
    indexer.read_ahead(_logs_of(runs))


def unread_bytes(runs: list[Run]) -> int:
    """Bytes of these runs' logs that no process has read yet."""
    return indexer.unread_bytes((path, root) for path, root, _ in _logs_of(runs))


def _restored(run: Run) -> RunDetail | None:
    """The detail an earlier process kept for this run, if its files are unchanged since."""
    row = indexer.kept(run.trainer.root, detailstore.key(run.id))
    parts = detailstore.decode(row, repr(run.signature)) if row is not None else None
    return RunDetail(run, *parts) if parts is not None else None


def summary(run: Run) -> RunSummary:
    """`detail(run).summary`; for a run an earlier process kept, the summary kept beside its
    detail, which stays encoded in the store (a list of 10,000 runs decoded every detail)."""
    with _memo_lock:
        hit = _memo.get(run.id)
        known = hit is None and _kept.get(run.id) is run.signature
    if hit is None and run.signature:
        row = indexer.peek_kept(run.trainer.root, detailstore.key(run.id))
        # `unready` compared this walk's signature with the row's already (`_kept`).
        kept = (
            None
            if row is None
            else detailstore.summary(row, None if known else repr(run.signature))
        )
        if kept is not None:
            return RunSummary(run, *kept)
    return detail(run).summary


def is_ready(run: Run) -> bool:
    """Whether `detail(run)` answers without reading logs: from memory, or kept by an earlier
    process (left in the store until a page shows the run)."""
    with _memo_lock:
        if _known_ready(run):
            return True
    if not run.signature:
        return False
    row = indexer.peek_kept(run.trainer.root, detailstore.key(run.id))
    if row is None or not detailstore.matches(row, repr(run.signature)):
        return False
    with _memo_lock:
        _kept[run.id] = run.signature
    return True


def unready(runs: list[Run]) -> list[Run]:
    """The runs of `runs` that are not `is_ready`: a warm page of 10,000 runs asks this of
    every run it does not show, so a run known ready costs a look-up, not a comparison."""
    with _memo_lock:
        memo, kept = _memo, _kept
        # Most runs are known by the very signature object this walk made: checked inline,
        # 10,000 function calls were a warm page's largest share.
        unknown = [
            r
            for r in runs
            if not (
                ((hit := memo.get(r.id)) is not None and hit[0] is r.signature)
                or kept.get(r.id) is r.signature
            )
            and not _known_ready(r)
        ]
    return [r for r in unknown if not is_ready(r)]


def _known_ready(run: Run) -> bool:
    """Whether the memo or a kept row is of this run's signature (under `_memo_lock`). Each
    walk makes new, equal signatures: the first match keeps the new one, so the next requests
    compare by identity."""
    hit = _memo.get(run.id)
    if hit is not None and (hit[0] is run.signature or hit[0] == run.signature):
        if hit[0] is not run.signature:
            _memo[run.id] = (run.signature, hit[1])
        return True
    kept = _kept.get(run.id)
    if kept is not None and (kept is run.signature or kept == run.signature):
        _kept[run.id] = run.signature
        return True
    return False


def was_read(run: Run) -> bool:
    """Whether this run's detail was built here, perhaps from files that changed since (a
    training run's change on every poll)."""
    with _memo_lock:
        return run.id in _memo


def walk_only(run: Run) -> RunDetail:
    """What a run's row can show before its logs are read."""
    empty = History()
    checkpoints = tuple(
        build_checkpoints(empty, run.checkpoint_steps, run.checkpoints_dir, run.final)
    )
    ranking = Ranking("pending", "", "", (None,) * len(checkpoints), None)
    return RunDetail(
        run=run,
        history=empty,
        checkpoints=checkpoints,
        ranking=ranking,
        header=RunHeader(),
        lineage=None,
        pending=True,
    )


def clear_memo() -> None:
    with _memo_lock:
        _memo.clear()
        _kept.clear()
    with _walks_lock:
        _walks.clear()


caches.register(__name__, clear_memo, "_memo", "_kept", "_walks")
caches.register(__name__, _parse_stamp.cache_clear, "_parse_stamp")


def _states(run: Run) -> tuple[TrainerState | None, TrainerState | None]:
    """(the run-level state `save_state()` wrote at the end, the newest checkpoint's state)."""
    root = run.trainer.root
    top = read_trainer_state(run.path, root) if run.may_have(STATE) else None
    return top, newest_trainer_state(run.checkpoints_dir, list(run.checkpoint_steps), root)


def _state_source(run: Run, state: TrainerState | None, logs: list[Source]) -> Source | None:
    """The state's log_history where the logs cannot answer: the steps they have no line at
    (a run without a log, or the lines an upstream callback dropped off its logging grid)."""
    if state is None or not state.history:
        return None
    # Set operations over the step arrays run in C: this is on every run's detail.
    missing = set(state.history).difference(*(steps for src in logs for _, steps in src.shapes))
    uncovered = {s: state.history[s] for s in sorted(missing)}
    if not uncovered:
        return None
    return Source(None, shapes_of(uncovered), uncovered)


def _hf_detail(run: Run) -> RunDetail:
    root = run.trainer.root
    steps = list(run.checkpoint_steps)
    top, state = _states(run)
    summary = read_summary(run.path, root, steps, run.may_have(LLAMA_FACTORY_LOG))
    # The trainer states come first: a log wins a tie at one step.
    extra = _state_source(run, top or state, list(summary.sources))
    history = History(((extra,) if extra else ()) + summary.sources, False, summary.files)
    counted = top or state
    final_step = max(
        (s for s in (history.last_step, counted.global_step if counted else None) if s is not None),
        default=None,
    )
    checkpoints = _own_states(
        run, build_checkpoints(history, steps, run.checkpoints_dir, run.final, final_step), state
    )
    lineage = read_lineage(run.path, root) if run.may_have(LINEAGE) else None
    ranking = rank(
        run.type,
        checkpoints,
        trainer_best=_trainer_best(top or state, checkpoints),
        history=history,
        chosen_by=_chosen_by(run, top or state, history, lineage),
    )
    max_steps = next(
        (s.max_steps for s in (top, state) if s and s.max_steps and s.max_steps > 0), None
    ) or _logged_total(history)
    # The adapter fills in only what a lineage (written at the end) does not say.
    adapter = None if run_header.is_complete(lineage) else _newest_adapter(run)
    runtime = history.at(final_step).values.get("train_runtime")
    if runtime is None:
        runtime = _results_runtime(run)
    return RunDetail(
        run=run,
        history=history,
        checkpoints=checkpoints,
        ranking=ranking,
        # Without a lineage, the trainer's closing log entry (`train_runtime`) says how long.
        header=run_header.from_sources(lineage, adapter, max_steps, runtime),
        lineage=lineage,
        global_step=counted.global_step if counted else None,
    )


def _own_states(
    run: Run, checkpoints: list[Checkpoint], newest: TrainerState | None
) -> tuple[Checkpoint, ...]:
    """Checkpoints an earlier run left in a reused output folder (HF keeps them; each has its
    own trainer_state.json with its own max_steps) take their values from their own state,
    marked as such: the newest history is another run's."""
    # Only Hugging Face's own layout reuses a folder (a notebook's outputs/); the upstream
    # trainers start each run in a new stamped folder, so theirs are never read twice here.
    # Compared as strings: Path equality builds and keeps a case-folded copy of both.
    if newest is None or len(checkpoints) < 2 or str(run.checkpoints_dir) != str(run.path):
        return tuple(checkpoints)
    root, result = run.trainer.root, []
    newest_step = max(run.checkpoint_steps)
    for c in checkpoints:
        if c.is_final or c.step is None or c.step >= newest_step:
            result.append(c)
            continue
        tail = state_tail(c.path, root)
        own = read_trainer_state(c.path, root) if tail and disagrees(tail, newest) else None
        if own is None:
            result.append(c)
            continue
        mine = History((Source(None, shapes_of(own.history), own.history),))
        result.append(replace(c, point=mine.at(c.step), earlier_run=True))
    return tuple(result)


def _logged_total(history: History) -> int | None:
    """The step count a log states on its lines (LLaMA-Factory's `total_steps`)."""
    last = history.last_step
    total = as_whole(history.at(last).values.get("total_steps")) if last is not None else None
    return total if total is not None and total > 0 else None


def _results_runtime(run: Run) -> float | None:
    """How long training took, from the metrics file written when it ended."""
    for name in RESULTS_FILES:
        if not run.may_have(name):
            continue
        found = read_json_object(run.path / name, run.trainer.root)
        if found is not None and (runtime := finite(found.get("train_runtime"))) is not None:
            return runtime
    return None


def _chosen_by(
    run: Run, state: TrainerState | None, history: History, lineage: dict[str, Any] | None
) -> tuple[str, str] | None:
    """The metric and order the trainer chose its best checkpoint by: `metric_for_best_model`
    where a config names it (LLaMA-Factory's training_args.yaml, a lineage's training
    section), else found from `best_metric` in trainer_state.json."""
    if state is None:
        return None
    args = None
    if run.may_have(LLAMA_FACTORY_ARGS):
        args = read_mapping(run.path / LLAMA_FACTORY_ARGS, run.trainer.root)
    configs = [args or {}]
    for section in ("training", "training_config"):
        found = (lineage or {}).get(section)
        configs.append(found if isinstance(found, dict) else {})
    named = next((m for c in configs if (m := as_str(c.get("metric_for_best_model")))), None)
    greater = next((g for c in configs if isinstance(g := c.get("greater_is_better"), bool)), None)
    step = state.best_global_step
    if step is None and state.best_model_checkpoint is not None:
        numbered = CHECKPOINT_NAME.fullmatch(checkpoint_basename(state.best_model_checkpoint))
        step = int(numbered.group(1)) if numbered else None
    return trainer_metric(history, step, state.best_metric, named, greater)


def _trainer_best(
    state: TrainerState | None, checkpoints: tuple[Checkpoint, ...]
) -> tuple[str, str] | None:
    """The checkpoint `trainer_state.json` names best (its path is from the training machine)."""
    if state is None or (state.best_model_checkpoint is None and state.best_global_step is None):
        return None
    names = {c.name for c in checkpoints if not c.is_final}
    if state.best_model_checkpoint is not None:
        name = checkpoint_basename(state.best_model_checkpoint)
        if name in names or state.best_global_step is None:
            return name, STATE
    return f"checkpoint-{state.best_global_step}", STATE


def _mlx_run(trainer: Trainer, m: mlx.MlxRun, ws: Workspace, now: float | None) -> Run:
    folder = trainer.output_dir
    completed = m.segment.finished or m.final is not None
    return Run(
        trainer=trainer,
        name=m.segment.name,
        path=folder,
        type="mlx",
        started_at=m.segment.started,
        # Only the newest run can still be writing the shared log.
        status=status(completed, m.last_write if m.newest else None, ws.running_window, now),
        checkpoint_steps=m.steps,
        checkpoints_dir=folder / m.profile.checkpoints,
        final=(m.final, "file") if m.final is not None else None,
        last_write=None if completed else m.last_write,
        signature=m.signature,
    )


def _mlx_part(run: Run) -> mlx.MlxRun | None:
    return next(
        (m for m in mlx.runs(run.path, run.trainer.root) if m.segment.name == run.name), None
    )


def _mlx_history(part: mlx.MlxRun | None, run: Run) -> History:
    entries = part.segment.entries if part else {}
    log = run.path / part.profile.log if part else None
    source = Source(log, shapes_of(entries), entries, part.segment.skipped if part else 0)
    return History((source,), True, (log,) if log else ())


def _mlx_detail(run: Run) -> RunDetail:
    part = _mlx_part(run)
    history = _mlx_history(part, run)
    checkpoints = [
        replace(c, path=part.files[c.step], kind="file")
        if part and not c.is_final and c.step in part.files
        else c
        for c in build_checkpoints(history, run.checkpoint_steps, run.checkpoints_dir, run.final)
    ]
    trainer_best = None
    if part is not None and part.best is not None:
        best = part.best
        same = f"checkpoint-{best.step}"
        if best.step is not None and same in {c.name for c in checkpoints}:
            trainer_best = (same, f"{mlx.BEST_FILE} (a copy of {same})")
        else:
            # Its checkpoint was rotated away (only the best copy is kept): a row of its own.
            row = Checkpoint(
                "best_checkpoint", best.step, False, best.path, history.at(best.step), "file"
            )
            checkpoints.append(row)
            trainer_best = (row.name, mlx.BEST_FILE)
    lineage = None
    if part is not None and part.report is not None:
        lineage = mlx.report_lineage(part.report, run.trainer.root, part.profile)
    seg = part.segment if part else None
    header = run_header.from_sources(lineage, None, seg.max_steps if seg else None)
    if seg and seg.base_model:
        header = replace(header, base_model=seg.base_model)
    ordered = tuple(
        sorted(checkpoints, key=lambda c: (not c.is_final, c.step is None, c.step or 0))
    )
    return RunDetail(
        run=run,
        history=history,
        checkpoints=ordered,
        ranking=rank("mlx", ordered, trainer_best=trainer_best, history=history),
        header=header,
        lineage=lineage,
    )


def run_history(run: Run) -> History:
    """A run's whole merged history for charts, whatever its layout."""
    if run.trainer.layout == "mlx":
        return _mlx_history(_mlx_part(run), run)
    full = read_history(run.path, run.trainer.root)
    top, state = _states(run)
    extra = _state_source(run, top or state, list(full.sources))
    return History(((extra,) if extra else ()) + full.sources, True, full.files)
