"""Trainers' JSONL metric logs: lenient per line, merged per step; a run's merged history."""

from __future__ import annotations

import bisect
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from .paths import is_inside
from .values import as_float

LOG_NAME = re.compile(r"training_(?:(?P<stamp>\d{8}_\d{6})|.*)\.jsonl")
LATEST_LINK = "training_latest.jsonl"

Entry = dict[str, float]
MAX_STEP = 2**63
# Numbers beyond any float, which orjson rejects: 309 digits or more, or a 3-digit exponent.
_LONG_NUMBER = re.compile(rb"\d{309}|[eE]\+?\d{3}")


def parse_line(raw: bytes) -> tuple[int, Entry] | None:
    """(step, numeric values) for a well-formed log line, else None."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # Python's json.dumps writes NaN and Infinity, which orjson rejects, as it does integers
        # no float holds (those values are missing; the rest of the line counts).
        if b"NaN" not in raw and b"Infinity" not in raw and not _LONG_NUMBER.search(raw):
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
        k: f
        for k, v in obj.items()
        if k != "step" and isinstance(k, str) and (f := as_float(v)) is not None
    }
    return step, values


@dataclass(frozen=True)
class Parsed:
    """Complete lines of a chunk of log, parsed and merged per step."""

    entries: dict[int, Entry]
    skipped: int  # lines that are not trainer-shaped JSON
    consumed: int  # bytes up to the end of the last complete line
    pending_tail: bool  # an unterminated last line that does not parse yet


def parse_lines(data: bytes) -> Parsed:
    """Every line of `data`; a last line without a newline counts when it parses."""
    entries: dict[int, Entry] = {}
    skipped = consumed = 0
    lines = data.split(b"\n")
    tail = lines.pop()
    for raw in lines:
        consumed += len(raw) + 1
        if not raw.strip():
            continue
        parsed = parse_line(raw)
        if parsed is None:
            skipped += 1
        else:
            merge_into(entries, *parsed)
    pending = False
    if tail.strip():
        parsed = parse_line(tail)
        if parsed is None:
            pending = True  # a write in progress, or a crash mid-line
        else:
            consumed += len(tail)
            merge_into(entries, *parsed)
    return Parsed(entries, skipped, consumed, pending)


def merge_into(entries: dict[int, Entry], step: int, values: Entry) -> None:
    current = entries.get(step)
    # A new dict rather than update(): another history may share `current`.
    entries[step] = values if current is None else {**current, **values}


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
    """A run's merged metrics: every logged step, and entries at all of them or at some.

    A summary (`complete` false) holds entries only at the steps a table needs; the full
    history, for charts, holds every step's. Later files and later lines win per key.
    """

    steps: Sequence[int]
    entries: Mapping[int, Entry]
    skipped: int = 0
    files: tuple[Path, ...] = ()
    complete: bool = False

    @property
    def last_step(self) -> int | None:
        return self.steps[-1] if self.steps else None

    def nearest(self, step: int | None) -> int | None:
        """The logged step at or before `step`."""
        if step is None:
            return None
        i = bisect.bisect_right(self.steps, step)
        return self.steps[i - 1] if i else None

    def metric_names(self) -> list[str]:
        names: dict[str, None] = {}
        for entry in self.entries.values():
            names.update(dict.fromkeys(entry))
        return list(names)

    def column(self, name: str) -> list[float]:
        """`name` at every step with an entry, NaN where a step lacks it."""
        nan = math.nan
        return [self.entries[s].get(name, nan) for s in self.steps if s in self.entries]

    def entry_steps(self) -> list[int]:
        return [s for s in self.steps if s in self.entries]
