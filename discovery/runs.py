"""Trainers and their runs: found by layout, ordered by start time, with status."""

from __future__ import annotations

import bisect
import functools
import os
import re
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from . import mlx
from .checkpoints import (
    Checkpoint,
    build_checkpoints,
    checkpoint_steps,
    newest_trainer_state,
    read_adapter_config,
)
from .history import LogSummary, Series, read_series, read_summary
from .jsonl import log_files
from .paths import is_inside, is_safe_name, read_json_object, realpath
from .ranking import Ranking, rank

OUTPUT_DIR = re.compile(r"(?P<type>[A-Za-z0-9]+)_output_(?P<platform>.+)")
RUN_STAMP = re.compile(r"(\d{8}_\d{6})")
RUNNING_WINDOW_S = 600.0
STATUSES = ("running", "completed", "stopped")


@dataclass(frozen=True)
class Trainer:
    id: str
    type: str
    platform: str
    output_dir: Path
    layout: str = "hf"  # "hf": a folder per run; "mlx": runs are segments of one log


@dataclass(frozen=True)
class Run:
    trainer: Trainer
    name: str
    path: Path
    started_at: datetime
    status: str
    has_final_model: bool
    checkpoint_steps: tuple[int, ...]
    last_activity: float
    # What a change on disk would change: checkpoints, final model, lineage, log sizes.
    signature: tuple = field(default=(), compare=False, repr=False)

    @property
    def type(self) -> str:
        return self.trainer.type

    @property
    def id(self) -> str:
        return f"{self.trainer.id}/{self.name}"


@dataclass(frozen=True)
class RunDetail:
    """A run with everything its page shows: checkpoints, ranking, lineage, progress."""

    run: Run
    history: LogSummary
    checkpoints: tuple[Checkpoint, ...]
    ranking: Ranking
    lineage: dict[str, Any] | None
    base_model: str | None
    max_steps: int | None
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
    def best_score(self) -> float | None:
        return self.ranking.score_of(self.checkpoints, self.ranking.best or "")


def list_trainers(root: Path) -> list[Trainer]:
    """Every `Trainers/<platform>_<type>/<type>_output_<platform>/` folder."""
    trainers = []
    base = root / "Trainers"
    for entry in _scandirs(base, root):
        found = False
        for child in _scandirs(Path(entry.path), root):
            m = OUTPUT_DIR.fullmatch(child.name)
            if m and entry.name == f"{m['platform']}_{m['type']}":
                found = True
                trainers.append(
                    Trainer(entry.name, m["type"].lower(), m["platform"], Path(child.path))
                )
        if not found and mlx.is_mlx_trainer(Path(entry.path)):
            trainers.append(Trainer(entry.name, "mlx", "mac", Path(entry.path), layout="mlx"))
    trainers.sort(key=lambda t: t.id)
    return trainers


def get_trainer(root: Path, trainer_id: str) -> Trainer | None:
    if not is_safe_name(trainer_id):
        return None
    return next((t for t in list_trainers(root) if t.id == trainer_id), None)


def _scandirs(path: Path, root: Path) -> list[os.DirEntry[str]]:
    try:
        entries = list(os.scandir(path))
    except OSError:
        return []
    result = []
    for e in entries:
        try:
            if not e.is_dir():
                continue
        except OSError:
            continue
        if e.is_symlink() and not is_inside(e.path, root):
            continue
        result.append(e)
    return result


def started_at(name: str, mtime: float) -> datetime:
    m = RUN_STAMP.search(name)
    stamp = _parse_stamp(m.group(1)) if m else None
    return stamp or datetime.fromtimestamp(mtime)


@functools.lru_cache(maxsize=16384)
def _parse_stamp(stamp: str) -> datetime | None:
    # strptime is the slowest step of a warm walk; run names never change.
    try:
        return datetime.strptime(stamp, "%Y%m%d_%H%M%S")
    except ValueError:
        return None


def _is_dir_inside(entry: os.DirEntry[str] | None, root: Path) -> bool:
    """A scanned folder (or a link to one inside the workspace), from the scan's own data."""
    try:
        return (
            entry is not None
            and entry.is_dir()
            and (not entry.is_symlink() or is_inside(entry.path, root))
        )
    except OSError:
        return False


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
    trainer: Trainer,
    entry_path: Path,
    root: Path,
    now: float | None = None,
    running_window: float = RUNNING_WINDOW_S,
) -> Run | None:
    """A run folder, or None when it has neither a final model nor a checkpoint."""
    try:
        children = {e.name: e for e in os.scandir(entry_path)}
    except OSError:
        return None
    steps = checkpoint_steps(entry_path, root) if "checkpoints" in children else []
    final = _is_dir_inside(children.get("final_model"), root)
    if not steps and not final:
        return None
    logs = []
    for path in log_files(entry_path, root):
        try:
            st = os.stat(path)
        except OSError:
            continue
        logs.append((path.name, st.st_ino, st.st_size, st.st_mtime_ns))
    lineage = "training_lineage.json" in children
    activity = max([m / 1e9 for *_, m in logs], default=0.0)
    if not (final or lineage):
        # Only an unfinished run's status needs its checkpoints' times.
        newest = f"checkpoint-{steps[-1]}" if steps else None
        activity = max(
            activity,
            _entry_mtime(children.get("checkpoints")),
            _mtime(entry_path / "checkpoints" / newest) if newest else 0.0,
        )
    if final or lineage:
        status = "completed"
    elif (now if now is not None else time.time()) - activity <= running_window:
        status = "running"
    else:
        status = "stopped"
    name = entry_path.name
    return Run(
        trainer=trainer,
        name=name,
        path=entry_path,
        started_at=started_at(name, 0.0 if RUN_STAMP.search(name) else _mtime(entry_path)),
        status=status,
        has_final_model=final,
        checkpoint_steps=tuple(steps),
        last_activity=activity,
        signature=(tuple(steps), final, lineage, tuple(logs)),
    )


def list_runs(
    root: Path,
    trainer_type: str | None = None,
    now: float | None = None,
    running_window: float = RUNNING_WINDOW_S,
) -> list[Run]:
    """Runs of every trainer (or one type), newest start first."""
    runs = []
    for trainer in list_trainers(root):
        if trainer_type and trainer.type != trainer_type.lower():
            continue
        if trainer.layout == "mlx":
            runs.extend(mlx_runs(trainer, root, now, running_window))
            continue
        for entry in _scandirs(trainer.output_dir, root):
            run = read_run(trainer, Path(entry.path), root, now, running_window)
            if run is not None:
                runs.append(run)
    runs.sort(key=lambda r: (r.started_at, r.trainer.id, r.name), reverse=True)
    return runs


def get_run(
    root: Path,
    trainer_id: str,
    run_name: str,
    now: float | None = None,
    running_window: float = RUNNING_WINDOW_S,
) -> Run | None:
    trainer = get_trainer(root, trainer_id)
    if trainer is None or not is_safe_name(run_name):
        return None
    if trainer.layout == "mlx":
        return next(
            (r for r in mlx_runs(trainer, root, now, running_window) if r.name == run_name), None
        )
    path = trainer.output_dir / run_name
    if not path.is_dir() or not is_inside(path, root):
        return None
    return read_run(trainer, path, root, now, running_window)


def read_lineage(run_dir: Path) -> dict[str, Any] | None:
    return read_json_object(run_dir / "training_lineage.json")


def base_model(run: Run, lineage: dict[str, Any] | None) -> str | None:
    model = (lineage or {}).get("model")
    if isinstance(model, dict) and isinstance(model.get("base_model"), str):
        return model["base_model"]
    dirs = [run.path / "final_model"] if run.has_final_model else []
    dirs += [run.path / "checkpoints" / f"checkpoint-{s}" for s in reversed(run.checkpoint_steps)]
    for d in dirs:
        adapter = read_adapter_config(d)
        if adapter and isinstance(adapter.get("base_model_name_or_path"), str):
            return adapter["base_model_name_or_path"]
    return None


_memo: dict[str, tuple[tuple, RunDetail]] = {}
_memo_lock = threading.Lock()


def detail(
    run: Run, root: Path, rank_metric: str | None = None, rank_order: str | None = None
) -> RunDetail:
    """Everything a run's rows and page show; reused while the run's signature is unchanged."""
    if rank_metric is None and run.signature:
        with _memo_lock:
            hit = _memo.get(run.id)
        if hit is not None and hit[0] == run.signature:
            # The status can change with the clock alone, so the run itself is always fresh.
            return replace(hit[1], run=run)
    d = _detail(run, root, rank_metric, rank_order)
    if rank_metric is None and run.signature:
        with _memo_lock:
            _memo[run.id] = (run.signature, d)
    return d


def is_ready(run: Run) -> bool:
    """Whether `detail(run)` answers from memory, without reading logs."""
    with _memo_lock:
        hit = _memo.get(run.id)
    return hit is not None and hit[0] == run.signature


def walk_only(run: Run) -> RunDetail:
    """What a run's row can show before its logs are read."""
    checkpoints = tuple(
        build_checkpoints(
            run.path, run.path, LogSummary((), {}, 0, ()), list(run.checkpoint_steps), False
        )
    )
    ranking = Ranking("pending", "", "", (None,) * len(checkpoints), None)
    return RunDetail(
        run=run,
        history=LogSummary((), {}, 0, ()),
        checkpoints=checkpoints,
        ranking=ranking,
        lineage=None,
        base_model=None,
        max_steps=None,
        pending=True,
    )


def clear_memo() -> None:
    with _memo_lock:
        _memo.clear()


def _detail(run: Run, root: Path, rank_metric: str | None, rank_order: str | None) -> RunDetail:
    if run.trainer.layout == "mlx":
        return _mlx_detail(run, root, rank_metric, rank_order)
    steps = list(run.checkpoint_steps)
    history = read_summary(run.path, root, steps)
    checkpoints = tuple(build_checkpoints(run.path, root, history, steps, run.has_final_model))
    state = newest_trainer_state(run.path, steps)
    ranking = rank(
        run.type,
        checkpoints,
        trainer_best=state.best_model_checkpoint if state else None,
        metric=rank_metric,
        order=rank_order,
    )
    lineage = read_lineage(run.path)
    max_steps = state.max_steps if state and state.max_steps else None
    if max_steps is None:
        training = (lineage or {}).get("training")
        if isinstance(training, dict) and type(training.get("max_steps")) is int:
            max_steps = training["max_steps"]
    return RunDetail(
        run=run,
        history=history,
        checkpoints=checkpoints,
        ranking=ranking,
        lineage=lineage,
        base_model=base_model(run, lineage),
        max_steps=max_steps if max_steps and max_steps > 0 else None,
        global_step=state.global_step if state else None,
    )


class TrainingRunDiscovery:
    """The seed's API: run folders of one trainer type, newest first."""

    def __init__(self, repo_root: Path | str | None = None) -> None:
        self.repo_root = Path(repo_root) if repo_root is not None else Path.cwd()

    def discover(
        self, trainer_type: str, limit: int | None = None, platform: str | None = None
    ) -> list[Path]:
        """Run folders, newest first; `platform` ("rtx", "rtx3090", "mac") narrows by trainer."""
        if not self.repo_root.is_dir():
            return []
        runs = list_runs(realpath(self.repo_root), trainer_type)
        if platform:
            runs = [r for r in runs if r.trainer.platform.lower().startswith(platform.lower())]
        # An MLX trainer's runs share its folder: name it once.
        paths = list(dict.fromkeys(r.path for r in runs))
        return paths[:limit] if limit is not None else paths


def mlx_runs(
    trainer: Trainer, root: Path, now: float | None = None, running_window: float = RUNNING_WINDOW_S
) -> list[Run]:
    """One run per segment of an MLX trainer's log that trained or owns files."""
    folder = trainer.output_dir
    log = folder / mlx.LOG
    if not is_inside(log, root):
        return []
    try:
        st = os.stat(log)
    except OSError:
        return []
    segments = mlx.segments(folder)
    starts = mlx.span_starts(folder, segments)
    files = mlx.checkpoint_files(folder, root)
    final = mlx.final_model(folder, root)
    final_owner = _mlx_owner(starts, final) if final is not None else None
    report = _report_owner(folder, root, starts)
    owners = {step: _mlx_owner(starts, path) for step, path in files.items()}
    runs = []
    for i, seg in enumerate(segments):
        newest = i == len(segments) - 1
        steps = tuple(sorted(s for s, owner in owners.items() if owner == i))
        has_final = final_owner == i
        if not seg.entries and not steps and not has_final:
            continue
        if seg.finished or has_final:
            status = "completed"
        elif newest and (now if now is not None else time.time()) - st.st_mtime <= running_window:
            status = "running"
        else:
            status = "stopped"
        runs.append(
            Run(
                trainer=trainer,
                name=seg.name,
                path=folder,
                started_at=seg.started,
                status=status,
                has_final_model=has_final,
                checkpoint_steps=steps,
                last_activity=st.st_mtime,
                signature=(
                    st.st_ino,
                    st.st_size,
                    st.st_mtime_ns,
                    steps,
                    has_final,
                    i,
                    report if report is not None and report[0] == i else None,
                ),
            )
        )
    return runs


def _mlx_owner(starts: list[float], path: Path) -> int:
    """The index of the run whose time span holds the file's last write."""
    return max(bisect.bisect_right(starts, _mtime(path)) - 1, 0)


def _report_owner(folder: Path, root: Path, starts: list[float]) -> tuple[int, float] | None:
    """(index of the run that wrote the training report, its mtime), or None without one."""
    report = mlx.report(folder, root)
    return None if report is None else (_mlx_owner(starts, report), _mtime(report))


def _segment(run: Run) -> mlx.Segment | None:
    return next((s for s in mlx.segments(run.path) if s.name == run.name), None)


def _mlx_detail(run: Run, root: Path, rank_metric: str | None, rank_order: str | None) -> RunDetail:
    seg = _segment(run) or mlx.Segment(run.name, run.started_at)
    history = LogSummary(
        tuple(sorted(seg.entries)), seg.entries, seg.skipped, (run.path / mlx.LOG,)
    )
    files = mlx.checkpoint_files(run.path, root)
    checkpoints = tuple(
        replace(
            c,
            location=(run.path / "outputs" / "final_model") if c.is_final else files.get(c.step),
        )
        for c in build_checkpoints(
            run.path, root, history, list(run.checkpoint_steps), run.has_final_model
        )
    )
    ranking = rank("mlx", checkpoints, metric=rank_metric, order=rank_order)
    segments = mlx.segments(run.path)
    report = _report_owner(run.path, root, mlx.span_starts(run.path, segments))
    lineage = None
    if report is not None and segments and segments[report[0]].name == run.name:
        lineage = mlx.report_lineage(run.path / mlx.REPORT)
    return RunDetail(
        run=run,
        history=history,
        checkpoints=checkpoints,
        ranking=ranking,
        lineage=lineage,
        base_model=seg.base_model or ((lineage or {}).get("model") or {}).get("base_model"),
        max_steps=seg.max_steps,
    )


def run_series(run: Run, root: Path) -> Series:
    """A run's whole merged history for charts, whatever its layout."""
    if run.trainer.layout == "mlx":
        seg = _segment(run)
        entries = seg.entries if seg else {}
        steps = tuple(sorted(entries))
        names = list(dict.fromkeys(k for e in entries.values() for k in e))
        nan = float("nan")
        return Series(steps, {n: [entries[s].get(n, nan) for s in steps] for n in names})
    return read_series(run.path, root)
