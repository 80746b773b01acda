"""How fast a running run trains and how long it has left: elapsed time, steps per minute and
the time to its last step, from its log's steps and times.

The rate comes from the log's own durations over its last lines, so a resumed or a slowed-down
run shows today's pace: the upstream callback's `interval_time` (seconds since the previous
log line) or MLX's `step_time` (seconds per step). A log without durations (a Hugging Face
`trainer_state.json` log_history) gives the average since the run's start instead, where the
start is known from its name or log; otherwise the rate is unknown (None), never a guess.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from . import caches
from .logindex import last_entries
from .logs import History
from .runs import RUN_STAMP, Run, RunDetail, RunSummary, run_history

WINDOW = 10  # the last log lines with a duration that set the rate
LOOK_BACK = 50 * WINDOW  # how far back from the log's end they are looked for
# An evaluation's line: its interval is the time it took to evaluate, not to train.
EVAL_KEYS = frozenset({"eval_runtime", "eval_loss"})


@dataclass(frozen=True)
class Pace:
    elapsed_seconds: float | None = None
    steps_per_minute: float | None = None
    eta_seconds: float | None = None  # to the last step (`max_steps`), from now


UNKNOWN = Pace()


# Run id → (its signature, its last logged step, the rate its log's durations give): what
# a run's whole history says, read again only when one of its files changes.
_logged: dict[str, tuple[tuple, int | None, float | None]] = {}
_logged_lock = threading.Lock()


def clear_cache() -> None:
    with _logged_lock:
        _logged.clear()


caches.register(__name__, clear_cache, "_logged")


def run_pace(d: RunDetail | RunSummary, now: float | None = None) -> Pace:
    """A running run's pace, read from its whole log; UNKNOWN for a run that is not running."""
    run = d.run
    if run.status != "running":
        return UNKNOWN
    with _logged_lock:
        hit = _logged.get(run.id)
    if hit is None or not run.signature or hit[0] != run.signature:
        # A run list's JSON asks this of every running run on each poll, and a server's first
        # answer reads every log from windows: the rate and the last step are in the log's
        # last lines, read alone. A run without such lines (MLX's log, a trainer_state.json
        # only) is read whole.
        last = {} if run.trainer.layout == "mlx" else last_entries(run.path, run.trainer.root)
        if last:
            steps: Sequence[int] = sorted(last)
            merged: Mapping[int, Mapping[str, float]] = last
        else:
            history = run_history(run)
            steps, merged = history.steps, history.merged
        hit = (run.signature, steps[-1] if steps else None, _logged_rate(steps, merged))
        with _logged_lock:
            _logged[run.id] = hit
    return _pace(run, hit[1], hit[2], d.max_steps, now)


def pace(run: Run, history: History, max_steps: int | None, now: float | None = None) -> Pace:
    steps = history.steps
    last = steps[-1] if steps else None
    return _pace(run, last, _logged_rate(steps, history.merged), max_steps, now)


def _pace(
    run: Run,
    last: int | None,
    rate: float | None,
    max_steps: int | None,
    now: float | None,
) -> Pace:
    """The pace from a log's last step and the rate its durations give (None without them)."""
    now = time.time() if now is None else now
    start = _start(run)
    last_write = run.last_write if run.last_write is not None else now
    elapsed = max(now - start, 0.0) if start is not None else None
    if rate is None and start is not None and last is not None and last_write > start:
        # Without durations in the log: its steps over the time from the start to its last write.
        rate = 60 * last / (last_write - start) if last > 0 else None
    eta = None
    if rate and max_steps and last is not None:
        left = max(max_steps - last, 0)
        # From the last line's time: the time since it was written is part of the next steps.
        eta = max(last_write + 60 * left / rate - now, 0.0)
    return Pace(elapsed, rate, eta)


def _start(run: Run) -> float | None:
    """The run's start as a Unix time, where its name or log says it (an MLX run's name is its
    log's first record); a start read from a folder's modification time is no start."""
    if run.trainer.layout != "mlx" and not RUN_STAMP.search(run.name):
        return None
    return run.started_at.timestamp()  # local time, the clock run folders are named in


def _logged_rate(steps: Sequence[int], merged: Mapping[int, Mapping[str, float]]) -> float | None:
    """Steps per minute over the log's last lines that carry a duration (read from the end: a
    long run's log has hundreds of thousands)."""
    recent = steps[-LOOK_BACK:]
    per_step = [t for s in recent if (t := _seconds(merged[s].get("step_time"))) is not None]
    if per_step:
        per_step = per_step[-WINDOW:]
        return 60 * len(per_step) / sum(per_step)
    done = seconds = 0.0
    spans = 0
    for previous, s in zip(reversed(recent[:-1]), reversed(recent), strict=False):
        entry = merged[s]
        interval = _seconds(entry.get("interval_time"))
        if interval is None or s <= previous or EVAL_KEYS & entry.keys():
            continue
        done, seconds, spans = done + s - previous, seconds + interval, spans + 1
        if spans == WINDOW:
            break
    return 60 * done / seconds if spans else None


def _seconds(value: float | None) -> float | None:
    """A logged duration, if it is one."""
    return value if value is not None and math.isfinite(value) and value > 0 else None
