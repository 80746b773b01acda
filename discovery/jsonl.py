"""Reading trainers' JSONL metric logs: lenient per line, merged per step, read incrementally."""

from __future__ import annotations

import json
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from .paths import is_inside

LOG_NAME = re.compile(r"training_(?:(?P<stamp>\d{8}_\d{6})|.*)\.jsonl")
LATEST_LINK = "training_latest.jsonl"

Entry = dict[str, float]
MAX_STEP = 2**63


def parse_line(raw: bytes) -> tuple[int, Entry] | None:
    """(step, numeric values) for a well-formed log line, else None."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # Python's json.dumps writes NaN and Infinity, which orjson rejects.
        if b"NaN" not in raw and b"Infinity" not in raw:
            return None
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):
            return None
    if not isinstance(obj, dict):
        return None
    step = obj.get("step")
    # A step beyond 64 bits is garbage, not a step: indexes keep steps as int64.
    if type(step) is not int or not -MAX_STEP <= step < MAX_STEP:
        return None
    values = {
        k: float(v)
        for k, v in obj.items()
        if k != "step" and type(v) in (int, float) and isinstance(k, str)
    }
    return step, values


@dataclass
class LogState:
    """What has been read of one log file so far; grows with the file."""

    identity: tuple[int, int]
    size: int = 0
    mtime_ns: int = 0
    offset: int = 0
    entries: dict[int, Entry] = field(default_factory=dict)
    skipped: int = 0
    # An unterminated last line that does not parse yet: a write in progress, or a crash.
    pending_tail: bool = False
    # The bytes just before `offset`, to tell a grown file from one rewritten in place.
    fingerprint: bytes = b""

    def feed(self, data: bytes) -> None:
        lines = data.split(b"\n")
        tail = lines.pop()
        for raw in lines:
            self.offset += len(raw) + 1
            self._take(raw)
        self.pending_tail = False
        if tail.strip():
            parsed = parse_line(tail)
            if parsed is None:
                self.pending_tail = True
            else:
                self.offset += len(tail)
                self._merge(*parsed)

    def _take(self, raw: bytes) -> None:
        if not raw.strip():
            return
        parsed = parse_line(raw)
        if parsed is None:
            self.skipped += 1
        else:
            self._merge(*parsed)

    def _merge(self, step: int, values: Entry) -> None:
        current = self.entries.get(step)
        # A new dict rather than update(): an earlier state may share `current`.
        self.entries[step] = values if current is None else {**current, **values}


class LogReader:
    """Fully parsed logs for charts, a bounded number of them; growth is read from the offset."""

    def __init__(self, max_files: int = 64) -> None:
        self._lock = threading.Lock()
        self._states: OrderedDict[str, LogState] = OrderedDict()
        self.max_files = max_files

    def read(self, path: Path) -> LogState | None:
        key = str(path)
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                identity = (st.st_dev, st.st_ino)
                with self._lock:
                    old = self._states.get(key)
                    if (
                        old is not None
                        and old.identity == identity
                        and (
                            old.size,
                            old.mtime_ns,
                        )
                        == (st.st_size, st.st_mtime_ns)
                    ):
                        return old
                    if (
                        old is None
                        or old.identity != identity
                        or st.st_size < old.offset
                        or _read_at(f, old.offset - len(old.fingerprint), len(old.fingerprint))
                        != old.fingerprint
                    ):
                        # New, replaced, truncated or rewritten: read from the start.
                        state = LogState(identity=identity)
                    else:
                        # Grown: carry on from the last complete line. Readers holding
                        # `old` keep an unchanged snapshot.
                        state = LogState(
                            identity=identity,
                            offset=old.offset,
                            entries=dict(old.entries),
                            skipped=old.skipped,
                        )
                    f.seek(state.offset)
                    state.feed(f.read(max(st.st_size - state.offset, 0)))
                    state.size, state.mtime_ns = st.st_size, st.st_mtime_ns
                    state.fingerprint = _read_at(
                        f, max(state.offset - 64, 0), min(state.offset, 64)
                    )
                    self._states[key] = state
                    self._states.move_to_end(key)
                    while len(self._states) > self.max_files:
                        self._states.popitem(last=False)
                    return state
        except OSError:
            return None

    def clear(self) -> None:
        with self._lock:
            self._states.clear()


def _read_at(f, offset: int, size: int) -> bytes:
    f.seek(offset)
    return f.read(size)


reader = LogReader()


def log_files(run_dir: Path, root: Path) -> list[Path]:
    """A run's real `logs/training_*.jsonl` files, oldest first by the stamp in their name."""
    logs = run_dir / "logs"
    found: list[tuple[str, str, Path]] = []
    try:
        entries = list(os.scandir(logs))
    except OSError:
        return []
    for entry in entries:
        if entry.name == LATEST_LINK:
            continue
        m = LOG_NAME.fullmatch(entry.name)
        if m is None:
            continue
        path = Path(entry.path)
        if entry.is_symlink() and not is_inside(path, root):
            continue
        try:
            if not entry.is_file():
                continue
        except OSError:
            continue
        found.append((m.group("stamp") or "", entry.name, path))
    found.sort()
    return [p for _, _, p in found]


@dataclass(frozen=True)
class History:
    """A run's merged log: one entry per step, later files and later lines winning."""

    entries: Mapping[int, Entry]
    steps: tuple[int, ...]
    skipped: int
    files: tuple[Path, ...]

    @property
    def last_step(self) -> int | None:
        return self.steps[-1] if self.steps else None

    def metric_names(self) -> list[str]:
        names: dict[str, None] = {}
        for entry in self.entries.values():
            names.update(dict.fromkeys(entry))
        return list(names)


def merge(states: Iterable[LogState]) -> tuple[dict[int, Entry], int]:
    states = list(states)
    if len(states) == 1:
        s = states[0]
        return s.entries, s.skipped + s.pending_tail
    merged: dict[int, Entry] = {}
    skipped = 0
    for s in states:
        skipped += s.skipped + s.pending_tail
        for step, values in s.entries.items():
            current = merged.get(step)
            merged[step] = {**current, **values} if current else values
    return merged, skipped


def read_history(run_dir: Path, root: Path) -> History:
    files = log_files(run_dir, root)
    states = [s for s in (reader.read(p) for p in files) if s is not None]
    entries, skipped = merge(states)
    return History(
        entries=entries, steps=tuple(sorted(entries)), skipped=skipped, files=tuple(files)
    )
