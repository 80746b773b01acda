"""Metric histories: JSONL log lines and `log_history` entries, merged per step and per metric.

A run's metrics come from sources: its `logs/training_*.jsonl` files (oldest first) and, where
those cannot answer, the `log_history` of its `trainer_state.json` files. Trainers log metrics
at different cadences (training lines every few steps, eval lines less often, a summary at the
end), so a metric's value at a step is its latest logged value at or before that step.
"""

from __future__ import annotations

import bisect
import functools
import json
import math
import os
import re
from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson

from .paths import link_leaves, listing, open_in, scan
from .values import as_float

LOG_NAME = re.compile(r"training_(?:(?P<stamp>\d{8}_\d{6})|.*)\.jsonl")
LATEST_LINK = "training_latest.jsonl"
# LLaMA-Factory's live log, at the top of its output folder: one line per logging step,
# {"current_steps": 500, "total_steps": 6750, "loss": 1.85, "lr": 7.4e-05, "epoch": 0.22,
#  "percentage": 7.41, "elapsed_time": "0:25:47", "remaining_time": "5:22:29"}; eval lines
# carry eval_loss at their step, and multi-GPU runs can write a line twice (merged per step).
LLAMA_FACTORY_LOG = "trainer_log.jsonl"
# "0:25:47", "1 day, 0:08:23": timedelta's str(), as LLaMA-Factory writes times.
_CLOCK = re.compile(r"(?:(?P<days>\d+) days?, )?(?P<h>\d+):(?P<m>\d{2}):(?P<s>\d{2}(?:\.\d+)?)")
_CLOCK_KEYS = ("elapsed_time", "remaining_time")

Entry = dict[str, float]
MAX_STEP = 2**63
# Numbers beyond any float, which orjson rejects: 309 digits or more, or a 3-digit exponent.
_LONG_NUMBER = re.compile(rb"\d{309}|[eE]\+?\d{3}")


def parse_obj(obj: object) -> tuple[int, Entry] | None:
    """(step, numeric values) of one decoded log record, else None."""
    if not isinstance(obj, dict):
        return None
    step = obj.get("step")
    if step is None and "current_steps" in obj:
        return _llama_factory_line(obj)
    # A step beyond 64 bits is garbage, not a step: indexes keep steps as int64.
    if type(step) is not int or not -MAX_STEP <= step < MAX_STEP:
        return None
    # This runs for every log line: floats, most values, skip the call (as_float passes them
    # through unchanged); the step is an int, so only the other branch needs to leave it out.
    values = {}
    for k, v in obj.items():
        if type(v) is float:
            values[k] = v
        elif k != "step" and (f := as_float(v)) is not None:
            values[k] = f
    return step, values


def _llama_factory_line(obj: dict) -> tuple[int, Entry] | None:
    """A LLaMA-Factory `trainer_log.jsonl` line: its step is `current_steps`, its clock times
    are seconds."""
    step = obj.get("current_steps")
    if type(step) is not int or not -MAX_STEP <= step < MAX_STEP:
        return None
    values = {}
    for k, v in obj.items():
        if k == "current_steps":
            continue
        f = clock_seconds(v) if k in _CLOCK_KEYS and isinstance(v, str) else as_float(v)
        if f is not None:
            values[k] = f
    return step, values


def log_reached_total(path: str, root: Path) -> bool:
    """Whether a LLaMA-Factory log's last complete line is at its `total_steps`."""
    f = open_in(path, root)
    if f is None:
        return False
    with f:
        try:
            size = os.fstat(f.fileno()).st_size
            tail = os.pread(f.fileno(), 4096, max(0, size - 4096))
        except OSError:
            return False
    lines = tail.rstrip(b"\n").rsplit(b"\n", 1)
    parsed = parse_line(lines[-1]) if lines and lines[-1] else None
    if parsed is None:
        return False
    total = parsed[1].get("total_steps")
    return total is not None and total > 0 and parsed[0] >= total


def clock_seconds(text: str) -> float | None:
    """Seconds in a timedelta's text ("1 day, 0:08:23"), else None."""
    m = _CLOCK.fullmatch(text.strip())
    if m is None:
        return None
    days = int(m["days"] or 0)
    return days * 86400 + int(m["h"]) * 3600 + int(m["m"]) * 60 + float(m["s"])


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
    return parse_obj(obj)


def merge_into(entries: dict[int, Entry], step: int, values: Entry) -> None:
    current = entries.get(step)
    # A new dict rather than update(): another history may share `current`.
    entries[step] = values if current is None else {**current, **values}


Shape = tuple[tuple[str, ...], array]  # the metric names some lines share, and their steps


def shapes_of(entries: Mapping[int, Entry]) -> tuple[Shape, ...]:
    """The steps of each set of metric names logged together, from entries merged per step."""
    by_keys: dict[tuple[str, ...], array] = {}
    for step in sorted(entries):
        keys = tuple(sorted(entries[step]))
        if keys:
            by_keys.setdefault(keys, array("q")).append(step)
    return tuple(by_keys.items())


def log_files(run_dir: Path, root: Path, top_log: bool | None = None) -> list[Path]:
    """A run's real `logs/training_*.jsonl` files, oldest first by the stamp in their name
    (after LLaMA-Factory's log, as `log_paths` finds it)."""
    return [Path(p) for p in log_paths(str(run_dir), root, top_log)]


def log_paths(run_dir: str, root: Path, top_log: bool | None = None) -> tuple[str, ...]:
    """`log_files` as strings, for the walk's hot path; LLaMA-Factory's `trainer_log.jsonl`
    first where there is one (`top_log`: whether the run folder lists one, when known)."""
    found = listing(os.path.join(run_dir, "logs"), root, "logs", lambda f: _scan_logs(f, root))
    if top_log is False:
        return found or ()  # the walk's listing of the run folder has none
    top = os.path.join(run_dir, LLAMA_FACTORY_LOG)
    if top_log is None:
        top_log = os.path.lexists(top)
    if top_log and os.path.isfile(top) and not link_leaves(top, root):
        return (top, *(found or ()))
    return found or ()


def _scan_logs(folder: str, root: Path) -> tuple[tuple[str, ...], bool]:
    found = scan(folder, root, "file", lambda n: n != LATEST_LINK and LOG_NAME.fullmatch(n))
    named = []
    for entry in found.entries:
        m = LOG_NAME.fullmatch(entry.name)
        named.append(((m.group("stamp") if m else None) or "", entry.name, entry.path))
    named.sort()
    return tuple(p for _, _, p in named), found.linked


@dataclass(frozen=True)
class Point:
    """Every metric's latest value at or before a step, and the step each came from."""

    values: Entry
    steps: Mapping[str, int]

    @property
    def step(self) -> int | None:
        """The newest step any value comes from."""
        return max(self.steps.values(), default=None)


EMPTY_POINT = Point({}, {})


@dataclass(frozen=True)
class Source:
    """One file's metrics: the steps of each metric-name set, and entries at some or all steps."""

    path: Path | None
    shapes: tuple[Shape, ...]
    entries: Mapping[int, Entry]
    skipped: int = 0
    # The first answer of a log not yet read in full: shapes hold only the lines read.
    approximate: bool = False

    @property
    def last_step(self) -> int | None:
        return max((s[-1] for _, s in self.shapes if len(s)), default=None)

    def candidate_set(self, step: int) -> set[int]:
        """Steps whose entries hold the latest value of some metric at or before `step`."""
        found = set()
        for _, steps in self.shapes:
            i = bisect.bisect_right(steps, step)
            if i:
                found.add(steps[i - 1])
        return found


@dataclass(frozen=True)
class History:
    """A run's metrics from all its sources, later sources winning a tie at one step.

    A summary holds entries only where tables need them; the full history, for charts, holds
    every step's (`complete`).
    """

    sources: tuple[Source, ...] = ()
    complete: bool = False
    files: tuple[Path, ...] = ()

    @property
    def skipped(self) -> int:
        return sum(s.skipped for s in self.sources)

    @property
    def approximate(self) -> bool:
        return any(s.approximate for s in self.sources)

    @property
    def last_step(self) -> int | None:
        return max((s.last_step for s in self.sources if s.last_step is not None), default=None)

    def metric_names(self) -> list[str]:
        names: dict[str, None] = {}
        for source in self.sources:
            for keys, _ in source.shapes:
                names.update(dict.fromkeys(keys))
        return sorted(names)

    def steps_of(self, name: str) -> list[int]:
        """The steps `name` was logged at, ascending, across sources."""
        found: set[int] = set()
        for source in self.sources:
            for keys, steps in source.shapes:
                if name in keys:
                    found.update(steps)
        return sorted(found)

    def at(self, step: int | None) -> Point:
        """Each metric's latest value at or before `step`, across sources."""
        if step is None:
            return EMPTY_POINT
        # Applied oldest first, so each name ends with its newest value: the later step, or at
        # one step the later source. dict.update keeps this in C; it runs once per checkpoint.
        # One sort of every source's candidates together.
        found = {
            (s, rank) for rank, src in enumerate(self.sources) for s in src.candidate_set(step)
        }
        values: Entry = {}
        steps: dict[str, int] = {}
        sources = self.sources
        for s, rank in sorted(found):
            entry = sources[rank].entries.get(s)
            if entry:
                values.update(entry)
                steps.update(dict.fromkeys(entry, s))
        return Point(values, steps)

    @functools.cached_property
    def merged(self) -> dict[int, Entry]:
        """Every entry merged per step (a complete history's), later sources winning."""
        out: dict[int, Entry] = {}
        for source in self.sources:
            for step in sorted(source.entries):
                merge_into(out, step, source.entries[step])
        return out

    @functools.cached_property
    def steps(self) -> tuple[int, ...]:
        """Every step with an entry."""
        return tuple(sorted(self.merged))

    def column(self, name: str) -> list[float]:
        """`name` at every step of `steps`, NaN where a step lacks it."""
        merged, nan = self.merged, math.nan
        return [merged[s].get(name, nan) for s in self.steps]
