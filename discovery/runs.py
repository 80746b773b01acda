"""Trainers and their runs: found by layout, ordered by start time, with status and detail."""

from __future__ import annotations

import functools
import os
import re
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from . import header as run_header
from . import mlx
from .checkpoints import (
    Checkpoint,
    build_checkpoints,
    checkpoint_steps,
    newest_trainer_state,
    read_adapter_config,
)
from .header import RunHeader
from .logindex import read_history, read_summary
from .logs import History, log_files
from .paths import is_inside, is_safe_name, read_json_object, realpath
from .ranking import Ranking, RankRequest, rank

OUTPUT_DIR = re.compile(r"(?P<type>[A-Za-z0-9]+)_output_(?P<platform>.+)")
RUN_STAMP = re.compile(r"(\d{8}_\d{6})")
RUNNING_WINDOW_S = 600.0
STATUSES = ("running", "completed", "stopped")


@dataclass(frozen=True)
class Workspace:
    """What discovery reads: the workspace root, and how recent a write means "running"."""

    root: Path
    running_window: float = RUNNING_WINDOW_S

    @classmethod
    def at(cls, root: Path | str, running_window: float = RUNNING_WINDOW_S) -> Workspace:
        return cls(realpath(root), running_window)


@dataclass(frozen=True)
class Trainer:
    id: str
    type: str
    platform: str
    output_dir: Path
    root: Path  # nothing outside it is read for this trainer's runs
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
    # What a change on disk would change: checkpoints, final model, lineage, log sizes.
    signature: tuple = field(default=(), compare=False, repr=False)
    # The Unix time of its newest log or checkpoint write, known for unfinished runs: what
    # `status` compared with the running window, and what a stopped run's page shows.
    last_write: float | None = field(default=None, compare=False)

    @property
    def type(self) -> str:
        return self.trainer.type

    @property
    def id(self) -> str:
        return f"{self.trainer.id}/{self.name}"


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
    def best_score(self) -> float | None:
        return self.ranking.score_of(self.checkpoints, self.ranking.best or "")

    @property
    def base_model(self) -> str | None:
        return self.header.base_model

    @property
    def max_steps(self) -> int | None:
        return self.header.max_steps

    @property
    def progress(self) -> float | None:
        """The share of `max_steps` done, when both are known."""
        if self.step is None or not self.max_steps:
            return None
        return min(self.step / self.max_steps, 1.0)


def status(completed: bool, last_write: float | None, window: float, now: float | None) -> str:
    """completed when the trainer says so; running while it wrote within `window` seconds."""
    if completed:
        return "completed"
    now = time.time() if now is None else now
    if last_write is not None and now - last_write <= window:
        return "running"
    return "stopped"


def list_trainers(ws: Workspace) -> list[Trainer]:
    """Every `Trainers/<platform>_<type>/<type>_output_<platform>/` folder, and MLX trainers."""
    root = ws.root
    trainers = []
    for entry in _scandirs(root / "Trainers", root):
        found = False
        for child in _scandirs(Path(entry.path), root):
            m = OUTPUT_DIR.fullmatch(child.name)
            if m and entry.name == f"{m['platform']}_{m['type']}":
                found = True
                trainers.append(
                    Trainer(entry.name, m["type"].lower(), m["platform"], Path(child.path), root)
                )
        if not found and mlx.is_mlx_trainer(Path(entry.path)):
            trainers.append(Trainer(entry.name, "mlx", "mac", Path(entry.path), root, layout="mlx"))
    trainers.sort(key=lambda t: t.id)
    return trainers


def get_trainer(ws: Workspace, trainer_id: str) -> Trainer | None:
    if not is_safe_name(trainer_id):
        return None
    return next((t for t in list_trainers(ws) if t.id == trainer_id), None)


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
    trainer: Trainer, entry_path: Path, ws: Workspace, now: float | None = None
) -> Run | None:
    """A run folder, or None when it has neither a final model nor a checkpoint."""
    root = trainer.root
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
    completed = final or lineage
    last_write = None
    if not completed:
        # Only an unfinished run's status needs its checkpoints' times.
        newest = f"checkpoint-{steps[-1]}" if steps else None
        last_write = max(
            [m / 1e9 for *_, m in logs]
            + [
                _entry_mtime(children.get("checkpoints")),
                _mtime(entry_path / "checkpoints" / newest) if newest else 0.0,
            ]
        )
    name = entry_path.name
    return Run(
        trainer=trainer,
        name=name,
        path=entry_path,
        started_at=started_at(name, 0.0 if RUN_STAMP.search(name) else _mtime(entry_path)),
        status=status(completed, last_write, ws.running_window, now),
        has_final_model=final,
        checkpoint_steps=tuple(steps),
        signature=(tuple(steps), final, lineage, tuple(logs)),
        last_write=last_write,
    )


def list_runs(
    ws: Workspace, trainer_type: str | None = None, now: float | None = None
) -> list[Run]:
    """Runs of every trainer (or one type), newest start first."""
    runs = []
    for trainer in list_trainers(ws):
        if trainer_type and trainer.type != trainer_type.lower():
            continue
        runs.extend(trainer_runs(trainer, ws, now))
    runs.sort(key=lambda r: (r.started_at, r.trainer.id, r.name), reverse=True)
    return runs


def trainer_runs(trainer: Trainer, ws: Workspace, now: float | None = None) -> list[Run]:
    if trainer.layout == "mlx":
        return [_mlx_run(trainer, m, ws, now) for m in mlx.runs(trainer.output_dir, trainer.root)]
    runs = []
    for entry in _scandirs(trainer.output_dir, trainer.root):
        run = read_run(trainer, Path(entry.path), ws, now)
        if run is not None:
            runs.append(run)
    return runs


def get_run(ws: Workspace, trainer_id: str, run_name: str, now: float | None = None) -> Run | None:
    trainer = get_trainer(ws, trainer_id)
    if trainer is None or not is_safe_name(run_name):
        return None
    if trainer.layout == "mlx":
        return next((r for r in trainer_runs(trainer, ws, now) if r.name == run_name), None)
    path = trainer.output_dir / run_name
    if not path.is_dir() or not is_inside(path, trainer.root):
        return None
    return read_run(trainer, path, ws, now)


def read_lineage(run_dir: Path) -> dict[str, Any] | None:
    return read_json_object(run_dir / "training_lineage.json")


def _newest_adapter(run: Run) -> dict[str, Any] | None:
    """The adapter config of the final model, else of the newest checkpoint that has one."""
    dirs = [run.path / "final_model"] if run.has_final_model else []
    dirs += [run.path / "checkpoints" / f"checkpoint-{s}" for s in reversed(run.checkpoint_steps)]
    for d in dirs:
        adapter = read_adapter_config(d)
        if adapter and isinstance(adapter.get("base_model_name_or_path"), str):
            return adapter
    return None


_memo: dict[str, tuple[tuple, RunDetail]] = {}
_memo_lock = threading.Lock()


def detail(run: Run, ranking: RankRequest | None = None) -> RunDetail:
    """Everything a run's rows and page show; reused while the run's signature is unchanged.

    A `ranking` request is checked against the metrics the run logged (`RankError`).
    """
    if ranking is not None:
        d = detail(run)
        ranking.check(d.history.metric_names())
        return replace(d, ranking=rank(run.type, d.checkpoints, request=ranking))
    if run.signature:
        with _memo_lock:
            hit = _memo.get(run.id)
        if hit is not None and hit[0] == run.signature:
            # The status can change with the clock alone, so the run itself is always fresh.
            return replace(hit[1], run=run)
    d = _mlx_detail(run) if run.trainer.layout == "mlx" else _hf_detail(run)
    if run.signature:
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
    empty = History((), {})
    checkpoints = tuple(
        build_checkpoints(run.path, empty, list(run.checkpoint_steps), run.has_final_model)
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


def _hf_detail(run: Run) -> RunDetail:
    steps = list(run.checkpoint_steps)
    history = read_summary(run.path, run.trainer.root, steps)
    checkpoints = tuple(build_checkpoints(run.path, history, steps, run.has_final_model))
    state = newest_trainer_state(run.path, steps)
    ranking = rank(
        run.type, checkpoints, trainer_best=state.best_model_checkpoint if state else None
    )
    lineage = read_lineage(run.path)
    max_steps = state.max_steps if state and state.max_steps and state.max_steps > 0 else None
    # The adapter fills in only what a lineage (written at the end) does not say.
    adapter = None if run_header.is_complete(lineage) else _newest_adapter(run)
    return RunDetail(
        run=run,
        history=history,
        checkpoints=checkpoints,
        ranking=ranking,
        header=run_header.from_sources(lineage, adapter, max_steps),
        lineage=lineage,
        global_step=state.global_step if state else None,
    )


def _mlx_run(trainer: Trainer, m: mlx.MlxRun, ws: Workspace, now: float | None) -> Run:
    completed = m.segment.finished or m.has_final
    return Run(
        trainer=trainer,
        name=m.segment.name,
        path=trainer.output_dir,
        started_at=m.segment.started,
        # Only the newest run can still be writing the shared log.
        status=status(completed, m.log_mtime if m.newest else None, ws.running_window, now),
        has_final_model=m.has_final,
        checkpoint_steps=m.steps,
        signature=(m.log_signature, m.steps, m.has_final, m.index, m.report_mtime),
        last_write=None if completed else m.last_write,
    )


def _mlx_part(run: Run) -> mlx.MlxRun | None:
    return next(
        (m for m in mlx.runs(run.path, run.trainer.root) if m.segment.name == run.name), None
    )


def _mlx_detail(run: Run) -> RunDetail:
    part = _mlx_part(run)
    seg = part.segment if part else mlx.Segment(run.name, run.started_at)
    history = History(
        tuple(sorted(seg.entries)), seg.entries, seg.skipped, (run.path / mlx.LOG,), True
    )
    files = mlx.checkpoint_files(run.path, run.trainer.root)
    checkpoints = tuple(
        replace(
            c,
            location=(run.path / "outputs" / "final_model")
            if c.is_final or c.step is None
            else files.get(c.step),
        )
        for c in build_checkpoints(
            run.path, history, list(run.checkpoint_steps), run.has_final_model
        )
    )
    lineage = None
    if part is not None and part.report_mtime is not None:
        lineage = mlx.report_lineage(run.path / mlx.REPORT)
    header = run_header.from_sources(lineage, None, seg.max_steps)
    if seg.base_model:
        header = replace(header, base_model=seg.base_model)
    return RunDetail(
        run=run,
        history=history,
        checkpoints=checkpoints,
        ranking=rank("mlx", checkpoints),
        header=header,
        lineage=lineage,
    )


def run_history(run: Run) -> History:
    """A run's whole merged history for charts, whatever its layout."""
    if run.trainer.layout == "mlx":
        part = _mlx_part(run)
        entries = part.segment.entries if part else {}
        return History(
            tuple(sorted(entries)), entries, part.segment.skipped if part else 0, (), True
        )
    return read_history(run.path, run.trainer.root)
