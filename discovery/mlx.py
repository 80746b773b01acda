"""The Mac MLX trainer: one appended `training.jsonl` holds several runs.

Layout (upstream `Trainers/mistral_lora_mac`, paths from its configs): each config has its own
folders, a profile here: the default one `logs/`, `checkpoints/`, `outputs/`; the test configs
`test_logs/`, `test_checkpoints/`, `test_outputs/` and `..._minimal`. In each: the appended log
`training.jsonl`, `checkpoint_step_N.npz` files (the last few) and `best_checkpoint.npz` (a copy
of the checkpoint with the lowest validation loss so far, never rotated), and
`final_model/lora_adapters.npz` and `metrics/training_report.json` under the outputs folder.
The trainer creates `final_model/` empty at start: only the file means a finished run.

A run starts at the "Logging Initialized" record and is named by its time. The files in the
shared folders belong to the run whose time span holds their last write; the next run
overwrites them.
"""

from __future__ import annotations

import ast
import bisect
import os
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .logs import Entry
from .paths import (
    file_cache,
    file_key,
    folder_inside,
    is_inside,
    loads_lenient,
    open_in,
    read_json_object,
    scan,
    stat_key,
)
from .values import as_dict, as_float, as_int, as_str


@dataclass(frozen=True)
class Profile:
    """One config's folders in an MLX trainer."""

    suffix: str  # added to its runs' names, so the profile shows in every link ("" for default)
    logs: str
    checkpoints: str
    outputs: str

    @property
    def log(self) -> Path:
        return Path(self.logs) / "training.jsonl"

    @property
    def report(self) -> Path:
        return Path(self.outputs) / "metrics" / "training_report.json"

    @property
    def final_model(self) -> Path:
        return Path(self.outputs) / "final_model" / "lora_adapters.npz"


PROFILES = (
    Profile("", "logs", "checkpoints", "outputs"),
    Profile("-test", "test_logs", "test_checkpoints", "test_outputs"),
    Profile(
        "-test_minimal", "test_logs_minimal", "test_checkpoints_minimal", "test_outputs_minimal"
    ),
)
INIT_MESSAGE = "Logging Initialized"
CHECKPOINT_FILE = re.compile(r"checkpoint_step_(\d{1,18})\.npz")
BEST_FILE = "best_checkpoint.npz"
TOTAL_STEPS = re.compile(r"Total steps:\s*(\d+)")
LOADING_MODEL = re.compile(r"Loading model:\s*(\S+)")
COMPLETE = re.compile(r"training (?:complete|completed|finished)", re.IGNORECASE)
# The trainer's `evaluate()` logs "Validation loss: 0.1234"; its final evaluation "  Validation
# Loss: 0.1234". Not "Best Validation Loss: …" or "New best validation loss: …".
VALIDATION = re.compile(r"\s*Validation loss:\s*(\S+)\s*", re.IGNORECASE)
# Times a clock can place: a stamp outside these years is garbage, not a start.
YEARS = (1971, 9000)


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
        when = datetime.fromisoformat(value).replace(tzinfo=None, microsecond=0)
    except ValueError:
        return None
    return when if YEARS[0] <= when.year <= YEARS[1] else None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def parse_segments(data: bytes, suffix: str = "") -> list[Segment]:
    """Runs in an MLX log, oldest first; records before the first start form no run."""
    segments: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
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
                "started": stamp or datetime(1971, 1, 1),
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
        entries: dict[int, Entry] = current["entries"]
        metrics = as_dict(record.get("metrics"))
        numbers = {k: f for k, v in metrics.items() if (f := as_float(v)) is not None}
        level = record.get("level")
        step = as_int(record.get("step"))
        if level == "METRICS" and step is not None:
            entries[step] = {**entries.get(step, {}), **numbers}
            last_step = step
        elif level == "EPOCH_SUMMARY":
            # An epoch's validation loss belongs to the last step it trained.
            if last_step is not None:
                entries[last_step] = {**entries[last_step], **numbers}
        elif level == "METRICS":
            current["skipped"] += 1
        if (m := VALIDATION.fullmatch(message)) and last_step is not None:
            value = _number(m.group(1))
            if value is not None:
                entries[last_step] = {**entries[last_step], "val_loss": value}
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
        result.append(Segment(name=name + suffix, **s))
    return result


def writer_offset(log: Path, segments: list[Segment]) -> float | None:
    """The UTC offset, in seconds, of the clock that wrote the log's zone-less timestamps.

    The newest record was written just before the log's last modification, so their gap,
    rounded to a quarter hour, is that offset: it holds when the folder was copied from a
    machine in another zone with its times kept. None means this machine's zone applies.
    """
    last = next((s.last_at for s in reversed(segments) if s.last_at is not None), None)
    try:
        mtime = os.stat(log).st_mtime
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


def _last_write(seg: Segment, offset: float | None, mtime: float, newest: bool) -> float | None:
    """When a run last wrote: its last record's time, never after the log last changed.

    The record, not the file's time, for the newest run too: a log copied from another machine
    has a new modification time but old records, and is no run still training.
    """
    if seg.last_at is None:
        return mtime if newest else None
    return min(_unix(seg.last_at, offset), mtime)


def _unix(when: datetime, offset: float | None) -> float:
    """A log time as a Unix time, to compare with file modification times."""
    if offset is None:
        return when.timestamp()  # zone-less: this machine's zone
    return when.replace(tzinfo=UTC).timestamp() - offset


def profiles(folder: Path) -> list[Profile]:
    """The configs whose log is in this folder."""
    return [p for p in PROFILES if (folder / p.log).is_file()]


def is_mlx_trainer(folder: Path) -> bool:
    return bool(profiles(folder))


def segments(folder: Path, profile: Profile, root: Path) -> list[Segment]:
    load = lambda data: parse_segments(data, profile.suffix)  # noqa: E731
    return file_cache.get(folder / profile.log, root, f"mlx_segments{profile.suffix}", load) or []


def _inside_folder(folder: Path, name: str, root: Path) -> Path | None:
    """`folder/name` when it is a folder that resolves inside `root`."""
    path = folder / name
    return path if folder_inside(path, root) else None


def checkpoint_files(folder: Path, profile: Profile, root: Path) -> dict[int, Path]:
    ckpts = _inside_folder(folder, profile.checkpoints, root)
    if ckpts is None:
        return {}
    found = {}
    for e in scan(ckpts, root, None, CHECKPOINT_FILE.fullmatch).entries:
        m = CHECKPOINT_FILE.fullmatch(e.name)
        if m:
            found[int(m.group(1))] = Path(e.path)
    return found


def _file(folder: Path, relative: Path, root: Path) -> Path | None:
    path = folder / relative
    return path if path.is_file() and is_inside(path, root) else None


def npz_state(path: Path, root: Path) -> dict[str, Any] | None:
    """The trainer state saved in a checkpoint .npz (`state`: a JSON string), without numpy.

    `np.savez` writes a zip of .npy files; `state.npy` holds one unicode string (dtype <U n,
    UTF-32). The model weights beside it need pickle to load and are never touched.
    """
    f = open_in(path, root)
    if f is None:
        return None
    try:
        with f, zipfile.ZipFile(f) as z:
            info = z.getinfo("state.npy")
            if info.file_size > 4 << 20:
                return None
            raw = z.read(info)
    # zlib.error: corrupt deflated bytes; NotImplementedError: a compression zipfile lacks;
    # RuntimeError: an encrypted entry.
    except (
        OSError,
        KeyError,
        zipfile.BadZipFile,
        EOFError,
        ValueError,
        zlib.error,
        NotImplementedError,
        RuntimeError,
    ):
        return None
    if not raw.startswith(b"\x93NUMPY") or len(raw) < 10:
        return None
    major = raw[6]
    start = 12 if major >= 2 else 10
    size = int.from_bytes(raw[8:start], "little")
    try:
        header = ast.literal_eval(raw[start : start + size].decode("latin-1"))
        descr = header["descr"]
    except (ValueError, SyntaxError, KeyError, TypeError, MemoryError, RecursionError):
        return None
    if not isinstance(descr, str) or not re.fullmatch(r"[<|]U\d+", descr):
        return None
    text = raw[start + size :].decode("utf-32-le", errors="replace").rstrip("\x00")
    state = loads_lenient(text.encode())
    return state if isinstance(state, dict) else None


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    return as_dict(data.get(key))


def report_lineage(path: Path, root: Path, profile: Profile) -> dict[str, Any] | None:
    """`training_report.json` in the shape of an HF run's `training_lineage.json`."""
    data = read_json_object(path, root, "mlx_report")
    if data is None:
        return None
    conf = _section(data, "configuration")
    return {
        "source": profile.report.as_posix(),
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
class Best:
    """The trainer's own best checkpoint (`best_checkpoint.npz`), as far as it can be read."""

    path: Path
    step: int | None  # its global_step, from the state saved in it


@dataclass(frozen=True)
class MlxRun:
    """One run of an MLX trainer's log, and the files in the shared folders that it wrote."""

    profile: Profile
    segment: Segment
    index: int
    newest: bool
    steps: tuple[int, ...]  # the checkpoint_step_N.npz files it wrote
    files: dict[int, Path]
    best: Best | None
    final: Path | None  # lora_adapters.npz, when this run wrote it
    report: Path | None
    # Every file the run's pages show, by FileKey: a change to any shows.
    signature: tuple[Any, ...]
    last_write: float | None = None  # the log's mtime for the newest run, else its last record


def _mtime(path: Path) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def owner(starts: list[float], path: Path) -> int:
    """The index of the run whose time span holds the file's last write."""
    return max(bisect.bisect_right(starts, _mtime(path)) - 1, 0)


def runs(folder: Path, root: Path) -> list[MlxRun]:
    """The runs of every profile's log that trained or own files, oldest first per profile."""
    found = []
    for profile in profiles(folder):
        found += _profile_runs(folder, profile, root)
    return found


def _profile_runs(folder: Path, profile: Profile, root: Path) -> list[MlxRun]:
    log = folder / profile.log
    if not is_inside(log, root):
        return []
    try:
        st = os.stat(log)
    except OSError:
        return []
    segs = segments(folder, profile, root)
    offset = writer_offset(log, segs)
    starts = [_unix(s.started, offset) for s in segs]
    files = checkpoint_files(folder, profile, root)
    owners = {step: owner(starts, path) for step, path in files.items()}
    final = _file(folder, profile.final_model, root)
    rep = _file(folder, profile.report, root)
    best_path = _file(folder, Path(profile.checkpoints) / BEST_FILE, root)
    found = []
    for i, seg in enumerate(segs):
        steps = tuple(sorted(s for s, o in owners.items() if o == i))
        mine_final = final if final is not None and owner(starts, final) == i else None
        mine_best = best_path if best_path is not None and owner(starts, best_path) == i else None
        best = None
        if mine_best is not None:
            state = npz_state(mine_best, root) or {}
            best = Best(mine_best, as_int(state.get("global_step")))
        mine_report = rep if rep is not None and owner(starts, rep) == i else None
        found.append(
            MlxRun(
                profile=profile,
                segment=seg,
                index=i,
                newest=i == len(segs) - 1,
                steps=steps,
                files={s: files[s] for s in steps},
                best=best,
                final=mine_final,
                report=mine_report,
                signature=(
                    stat_key(st),
                    i,
                    steps,
                    file_key(mine_final),
                    file_key(mine_best),
                    file_key(mine_report),
                ),
                last_write=_last_write(seg, offset, st.st_mtime, i == len(segs) - 1),
            )
        )
    return found
