"""A run's checkpoint table columns: which metrics it has, which it always shows (the score's
inputs and the losses), the method's defaults, and what `?col=` asks for."""

from __future__ import annotations

from dataclasses import dataclass

from discovery.metrics import column_order, default_columns, key_columns
from discovery.runs import RunDetail
from tuner_site.params import BadQuery


def _metric_columns(d: RunDetail) -> list[str]:
    """Metrics logged at any checkpoint, the ones people read first in front."""
    seen: dict[str, None] = {}
    for c in d.checkpoints:
        seen.update(dict.fromkeys(c.metrics))
    return column_order(seen)


# `?col=all` shows every column; `?col=` alone, the key columns only.
ALL_COLUMNS = "all"


@dataclass(frozen=True)
class Columns:
    """The checkpoint table's metric columns: which it has, which it always shows, which it
    shows now, and what the URL says (`col`: None when it says nothing, the default)."""

    available: list[str]
    key: list[str]
    shown: list[str]
    col: list[str] | None

    @property
    def extra(self) -> list[str]:
        return [m for m in self.available if m not in self.key]

    @property
    def hidden(self) -> int:
        return len(self.available) - len(self.shown)

    @property
    def form_values(self) -> list[str]:
        """`col` values a form keeps these columns with: none for the default, one empty
        value for the key columns only."""
        return [] if self.col is None else self.col or [""]


def checkpoint_columns(raw: list[str], d: RunDetail) -> Columns:
    """The columns the `col` values ask for; a metric the run has not logged is a BadQuery."""
    available = _metric_columns(d)
    key = key_columns(available, d.ranking.inputs)
    if not raw:
        default = default_columns(d.run.type, available, d.ranking.inputs)
        extra = [m for m in available if m in default and m not in key]
        return Columns(available, key, key + extra, None)
    asked = [v for v in dict.fromkeys(raw) if v]
    unknown = [v for v in asked if v not in available and v != ALL_COLUMNS]
    if unknown:
        accepted = ", ".join(available) or "(none logged at a checkpoint yet)"
        raise BadQuery(
            f"col must be a metric column of this run: {accepted}, or {ALL_COLUMNS}. "
            f"Got {unknown[0]!r}."
        )
    if ALL_COLUMNS in asked:
        every = [m for m in available if m not in key]
        return Columns(available, key, key + every, [ALL_COLUMNS])
    picked = set(asked)
    extra = [m for m in available if m in picked and m not in key]
    return Columns(available, key, key + extra, extra)
