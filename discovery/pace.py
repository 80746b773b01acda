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
import time
from collections.abc import Mapping
from dataclasses import dataclass

from .logs import History
from .runs import RUN_STAMP, Run, RunDetail, run_history

WINDOW = 10  # the last log lines with a duration that set the rate
# An evaluation's line: its interval is the time it took to evaluate, not to train.
EVAL_KEYS = frozenset({"eval_runtime", "eval_loss"})


@dataclass(frozen=True)
class Pace:
    elapsed_seconds: float | None = None
    steps_per_minute: float | None = None
    eta_seconds: float | None = None  # to the last step (`max_steps`), from now


UNKNOWN = Pace()


def run_pace(d: RunDetail, now: float | None = None) -> Pace:
    """A running run's pace, read from its whole log; UNKNOWN for a run that is not running."""
    if d.run.status != "running":
        return UNKNOWN
    return pace(d.run, run_history(d.run), d.max_steps, now)


def pace(run: Run, history: History, max_steps: int | None, now: float | None = None) -> Pace:
    now = time.time() if now is None else now
    start = _start(run)
    last_write = run.last_write if run.last_write is not None else now
    elapsed = max(now - start, 0.0) if start is not None else None
    merged = history.merged
    steps = [s for s in history.steps if s >= 0]
    rate = _logged_rate(steps, merged)
    if rate is None and start is not None and steps and last_write > start:
        # Without durations in the log: its steps over the time from the start to its last write.
        rate = 60 * steps[-1] / (last_write - start) if steps[-1] > 0 else None
    eta = None
    if rate and max_steps and steps:
        left = max(max_steps - steps[-1], 0)
        # From the last line's time: the time since it was written is part of the next steps.
        eta = max(last_write + 60 * left / rate - now, 0.0)
    return Pace(elapsed, rate, eta)


def _start(run: Run) -> float | None:
    """The run's start as a Unix time, where its name or log says it (an MLX run's name is its
    log's first record); a start read from a folder's modification time is no start."""
    if run.trainer.layout != "mlx" and not RUN_STAMP.search(run.name):
        return None
    return run.started_at.timestamp()  # local time, the clock run folders are named in


def _logged_rate(steps: list[int], merged: Mapping[int, Mapping[str, float]]) -> float | None:
    """Steps per minute over the log's last lines that carry a duration."""
    per_step = [t for s in steps if (t := _seconds(merged[s].get("step_time"))) is not None]
    if per_step:
        recent = per_step[-WINDOW:]
        return 60 * len(recent) / sum(recent)
    spans: list[tuple[int, float]] = []
    previous = None
    for s in steps:
        entry = merged[s]
        interval = _seconds(entry.get("interval_time"))
        if previous is not None and interval is not None and not EVAL_KEYS & entry.keys():
            spans.append((s - previous, interval))
        previous = s
    recent_spans = [(n, t) for n, t in spans if n > 0][-WINDOW:]
    if not recent_spans:
        return None
    return 60 * sum(n for n, _ in recent_spans) / sum(t for _, t in recent_spans)


def _seconds(value: float | None) -> float | None:
    """A logged duration, if it is one."""
    return value if value is not None and math.isfinite(value) and value > 0 else None
