"""The Mac MLX trainer: one appended `logs/training.jsonl` holds several runs.

Layout (upstream `Trainers/mistral_lora_mac`): `logs/training.jsonl`, `checkpoints/
checkpoint_step_N.npz` (the last few) and `best_checkpoint.npz`, `outputs/final_model/`,
`outputs/metrics/training_report.json`. A run starts at the "Logging Initialized" record;
its name is that record's time. Only the newest run can own the checkpoint files, the final
model and the report, which the next run overwrites.
"""

from __future__ import annotations

import bisect
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .logs import Entry
from .paths import file_cache, is_inside, loads_lenient, read_json_object
from .values import as_dict, as_float, as_str

LOG = Path("logs") / "training.jsonl"
REPORT = Path("outputs") / "metrics" / "training_report.json"
INIT_MESSAGE = "Logging Initialized"
CHECKPOINT_FILE = re.compile(r"checkpoint_step_(\d+)\.npz")
TOTAL_STEPS = re.compile(r"Total steps:\s*(\d+)")
LOADING_MODEL = re.compile(r"Loading model:\s*(\S+)")
COMPLETE = re.compile(r"training (?:complete|completed|finished)", re.IGNORECASE)


@dataclass(frozen=True)
class Segment:
    name: str
    started: datetime
    entries: dict[int, Entry] = field(default_factory=dict)
    skipped: int = 0
    max_steps: int | None = None
    base_model: str | None = None
    finished: bool = False
    last_at: datetime | None = None  # the newest record's time


def _stamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=None, microsecond=0)
    except ValueError:
        return None


def parse_segments(data: bytes) -> list[Segment]:
    """Runs in an MLX log, oldest first; records before the first start form no run."""
    segments: list[dict] = []
    current: dict | None = None
    last_step: int | None = None
    for raw in data.splitlines():
        if not raw.strip():
            continue
        record = loads_lenient(raw)
        if not isinstance(record, dict):
            if current is not None:
                current["skipped"] += 1
            continue
        message = as_str(record.get("message")) or ""
        stamp = _stamp(record.get("timestamp"))
        if INIT_MESSAGE in message:
            current = {
                "started": stamp or datetime(1970, 1, 1),
                "entries": {},
                "skipped": 0,
                "max_steps": None,
                "base_model": None,
                "finished": False,
                "last_at": stamp,
            }
            segments.append(current)
            last_step = None
            continue
        if current is None:
            continue
        # The "=====" banner that opens the next run is not the current run's last write.
        if stamp is not None and message.strip("=- "):
            current["last_at"] = stamp
        metrics = as_dict(record.get("metrics"))
        numbers = {k: f for k, v in metrics.items() if (f := as_float(v)) is not None}
        level = record.get("level")
        if level == "METRICS" and type(record.get("step")) is int:
            step = record["step"]
            entries = current["entries"]
            entries[step] = {**entries.get(step, {}), **numbers}
            last_step = step
        elif level == "EPOCH_SUMMARY":
            # An epoch's validation loss belongs to the last step it trained.
            if last_step is not None:
                entries = current["entries"]
                entries[last_step] = {**entries[last_step], **numbers}
        elif level == "METRICS":
            current["skipped"] += 1
        if m := TOTAL_STEPS.search(message):
            current["max_steps"] = int(m.group(1))
        if (m := LOADING_MODEL.search(message)) and current["base_model"] is None:
            current["base_model"] = m.group(1)
        if COMPLETE.search(message):
            current["finished"] = True
    result = []
    names: set[str] = set()
    for s in segments:
        name = s["started"].strftime("%Y%m%d_%H%M%S")
        while name in names:  # two starts in one second: keep both, distinctly
            name += "b"
        names.add(name)
        result.append(Segment(name=name, **s))
    return result


def writer_offset(folder: Path, segments: list[Segment]) -> float | None:
    """The UTC offset, in seconds, of the clock that wrote the log's zone-less timestamps.

    The newest record was written just before the log's last modification, so their gap,
    rounded to a quarter hour, is that offset: it holds when the folder was copied from a
    machine in another zone with its times kept. None means this machine's zone applies.
    """
    last = next((s.last_at for s in reversed(segments) if s.last_at is not None), None)
    try:
        mtime = os.stat(folder / LOG).st_mtime
    except OSError:
        return None
    if last is None:
        return None
    gap = last.replace(tzinfo=UTC).timestamp() - mtime
    quarter = round(gap / 900) * 900
    if abs(gap - quarter) > 120 or abs(quarter) > 14 * 3600:
        return None
    here = last.astimezone().utcoffset()
    if here is not None and quarter == here.total_seconds():
        return None  # written in this zone: its own rules also place stamps across a DST change
    return quarter


def _unix(when: datetime, offset: float | None) -> float:
    """A log time as a Unix time, to compare with file modification times."""
    if offset is None:
        return when.timestamp()  # zone-less: this machine's zone
    return when.replace(tzinfo=UTC).timestamp() - offset


def is_mlx_trainer(folder: Path) -> bool:
    return (folder / LOG).is_file()


def segments(folder: Path) -> list[Segment]:
    return file_cache.get(folder / LOG, "mlx_segments", parse_segments) or []


def checkpoint_files(folder: Path, root: Path) -> dict[int, Path]:
    found = {}
    try:
        entries = list(os.scandir(folder / "checkpoints"))
    except OSError:
        return {}
    for e in entries:
        m = CHECKPOINT_FILE.fullmatch(e.name)
        if m and (not e.is_symlink() or is_inside(e.path, root)):
            found[int(m.group(1))] = Path(e.path)
    return found


def final_model(folder: Path, root: Path) -> Path | None:
    path = folder / "outputs" / "final_model"
    if path.is_dir() and (not path.is_symlink() or is_inside(path, root)):
        return path
    return None


def report(folder: Path, root: Path) -> Path | None:
    path = folder / REPORT
    return path if path.is_file() and is_inside(path, root) else None


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def report_lineage(path: Path) -> dict[str, Any] | None:
    """`training_report.json` in the shape of an HF run's `training_lineage.json`."""
    data = read_json_object(path, "mlx_report")
    if data is None:
        return None
    conf = _section(data, "configuration")
    return {
        "source": REPORT.as_posix(),
        "model": {"base_model": conf.get("model")},
        "lora": {"rank": conf.get("lora_rank"), "alpha": conf.get("lora_alpha")},
        "training": {
            k: conf.get(k)
            for k in ("learning_rate", "batch_size", "gradient_accumulation_steps", "num_epochs")
        },
        "results": _section(data, "training_results"),
        "resources": _section(data, "resource_usage"),
    }


@dataclass(frozen=True)
class MlxRun:
    """One run of an MLX trainer's log, and the files in the shared folder that it wrote."""

    segment: Segment
    index: int
    newest: bool
    steps: tuple[int, ...]  # the checkpoint_step_N.npz files it wrote
    has_final: bool
    report_mtime: float | None  # of the training report, when this run wrote it
    log_mtime: float
    log_signature: tuple[int, int, int]
    last_write: float | None = None  # the log's mtime for the newest run, else its last record


def _mtime(path: Path) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def owner(starts: list[float], path: Path) -> int:
    """The index of the run whose time span holds the file's last write."""
    return max(bisect.bisect_right(starts, _mtime(path) or 0.0) - 1, 0)


def runs(folder: Path, root: Path) -> list[MlxRun]:
    """The log's runs that trained or own files, oldest first."""
    log = folder / LOG
    if not is_inside(log, root):
        return []
    try:
        st = os.stat(log)
    except OSError:
        return []
    segs = segments(folder)
    offset = writer_offset(folder, segs)
    starts = [_unix(s.started, offset) for s in segs]
    owners = {step: owner(starts, path) for step, path in checkpoint_files(folder, root).items()}
    final = final_model(folder, root)
    final_owner = owner(starts, final) if final is not None else None
    rep = report(folder, root)
    report_owner = owner(starts, rep) if rep is not None else None
    report_mtime = _mtime(rep) if rep is not None else None
    found = []
    for i, seg in enumerate(segs):
        steps = tuple(sorted(s for s, o in owners.items() if o == i))
        if not seg.entries and not steps and final_owner != i:
            continue
        found.append(
            MlxRun(
                segment=seg,
                index=i,
                newest=i == len(segs) - 1,
                steps=steps,
                has_final=final_owner == i,
                report_mtime=report_mtime if report_owner == i else None,
                log_mtime=st.st_mtime,
                log_signature=(st.st_ino, st.st_size, st.st_mtime_ns),
                last_write=st.st_mtime
                if i == len(segs) - 1
                else (_unix(seg.last_at, offset) if seg.last_at else None),
            )
        )
    return found
