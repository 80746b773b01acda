"""A run's metrics across its log files: a cheap summary for tables, the full series for charts."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .jsonl import Entry, log_files, read_history
from .logindex import indexer


@dataclass(frozen=True)
class LogSummary:
    """Every logged step, and merged entries at the steps that were asked for."""

    steps: Sequence[int]
    entries: Mapping[int, Entry]
    skipped: int
    files: tuple[Path, ...]

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


def read_summary(run_dir: Path, root: Path, checkpoint_steps: Iterable[int] = ()) -> LogSummary:
    """Entries at each checkpoint step (or the nearest earlier logged one) and at the last step."""
    files = log_files(run_dir, root)
    wanted_steps = list(checkpoint_steps)

    def wanted_for(steps: Sequence[int]) -> set[int]:
        probe = LogSummary(steps, {}, 0, ())
        wanted = {probe.nearest(s) for s in wanted_steps} | {probe.last_step}
        return {s for s in wanted if s is not None}

    steps, entries, skipped = indexer.lookup(files, wanted_for)
    return LogSummary(steps, entries, skipped, tuple(files))


@dataclass(frozen=True)
class Series:
    """The whole merged history as columns aligned with `steps`; NaN where a step lacks a value."""

    steps: tuple[int, ...]
    columns: Mapping[str, list[float]]


def read_series(run_dir: Path, root: Path) -> Series:
    history = read_history(run_dir, root)
    names = history.metric_names()
    nan = math.nan
    columns = {n: [history.entries[s].get(n, nan) for s in history.steps] for n in names}
    return Series(history.steps, columns)
