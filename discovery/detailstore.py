"""Run details as plain values for the index store, so a restart does not rebuild them.

A detail is kept under its run's id with the run's signature (every file its pages show, with
sizes and times); a row whose signature is not the run's now is ignored. A first answer still
being checked, or a run not read yet, is never kept. Rows name their layout: the fields of the
dataclasses below and the discovery modules' sources, so a new field or a changed rule retires
every kept row.

A run list reads only the summary kept beside each detail (a dozen values: no path, no
checkpoint). Restoring 1,000 details must cost less than a walk of the workspace: the log
entries behind a detail (only the run page's later lookups need them) stay encoded until first
used, and checkpoint paths are joined to a shared parent rather than parsed whole.
"""

from __future__ import annotations

import hashlib
import marshal
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from .checkpoints import Checkpoint
from .header import RunHeader
from .logs import Entry, History, Point, Source
from .paths import child_joiner
from .ranking import Ranking

KEY_PREFIX = "detail\0"
Parts = tuple[
    History, tuple[Checkpoint, ...], Ranking, RunHeader, dict[str, Any] | None, int | None
]


def _layout() -> str:
    digest = hashlib.sha1()
    for cls in (Checkpoint, RunHeader, Ranking, Point, Source, History):
        digest.update(f"{cls.__name__}:{','.join(f.name for f in fields(cls))};".encode())
    for module in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(module.read_bytes())
    return digest.hexdigest()[:16]


LAYOUT = _layout()


def key(run_id: str) -> str:
    return KEY_PREFIX + run_id


class _Entries(Mapping[int, Entry]):
    """A source's entries, decoded on first use."""

    __slots__ = ("_data", "_encoded")

    def __init__(self, encoded: bytes) -> None:
        self._encoded: bytes | None = encoded
        self._data: dict[int, Entry] = {}

    def _all(self) -> dict[int, Entry]:
        if self._encoded is not None:
            self._data, self._encoded = marshal.loads(self._encoded), None
        return self._data

    def __getitem__(self, step: int) -> Entry:
        return self._all()[step]

    def get(self, step: int, default: Any = None) -> Any:
        return self._all().get(step, default)

    def __iter__(self) -> Iterator[int]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


def _flat(obj: Any) -> tuple[Any, ...]:
    return tuple(getattr(obj, f.name) for f in fields(obj))


def encode(signature: str, parts: Parts, summary: tuple[Any, ...]) -> tuple[Any, ...]:
    """The fields `decode` rebuilds, all of types marshal writes, and beside them `summary`
    (plain values `summary` returns without decoding the detail)."""
    history, checkpoints, ranking, header, lineage, global_step = parts
    sources = tuple(
        (
            None if s.path is None else str(s.path),
            tuple((keys, steps.tobytes()) for keys, steps in s.shapes),
            marshal.dumps(dict(s.entries)),
            s.skipped,
            s.approximate,
        )
        for s in history.sources
    )
    parents: dict[str, int] = {}
    rows = tuple(
        (
            c.name,
            c.step,
            c.is_final,
            parents.setdefault(str(c.path.parent), len(parents)),
            c.path.name,
            c.point.values,
            c.point.steps,
            c.kind,
        )
        for c in checkpoints
    )
    rest: tuple[Any, ...] = (
        (history.complete, tuple(str(f) for f in history.files), sources),
        tuple(parents),
        rows,
        _flat(ranking),
        _flat(header),
        lineage,
        global_step,
    )
    # The detail itself stays encoded in the row: whether a row is of this run's files now
    # (`matches`) is asked of every run a page does not show, and needs only the signature.
    return LAYOUT, signature, marshal.dumps(rest), summary


def matches(row: tuple[Any, ...], signature: str) -> bool:
    """Whether `row` is a detail of this layout kept under `signature`."""
    return len(row) == 4 and row[0] == LAYOUT and row[1] == signature


def summary(row: tuple[Any, ...], signature: str | None) -> tuple[Any, ...] | None:
    """The summary kept beside the detail, or None for a row of another layout or signature
    (None: `row` was matched with this signature already)."""
    if signature is None:
        return row[3] if len(row) == 4 and row[0] == LAYOUT else None
    return row[3] if matches(row, signature) else None


def _steps(data: bytes) -> array:
    steps = array("q")
    steps.frombytes(data)
    return steps


def decode(row: tuple[Any, ...], signature: str) -> Parts | None:
    """What `encode` was given, or None for a row of another layout or signature."""
    if not matches(row, signature):
        return None
    try:
        (complete, files, sources), parents, rows, ranking, header, lineage, step = marshal.loads(
            row[2]
        )
        history = History(
            tuple(
                Source(
                    None if path is None else Path(path),
                    tuple((keys, _steps(steps)) for keys, steps in shapes),
                    _Entries(entries),
                    skipped,
                    approximate,
                )
                for path, shapes, entries, skipped, approximate in sources
            ),
            complete,
            tuple(Path(f) for f in files),
        )
        joins = [child_joiner(Path(p)) for p in parents]
        checkpoints = tuple(
            Checkpoint(name, c_step, final, joins[parent](leaf), Point(values, steps), kind)
            for name, c_step, final, parent, leaf, values, steps, kind in rows
        )
        return history, checkpoints, Ranking(*ranking), RunHeader(*header), lineage, step
    except (TypeError, ValueError, IndexError, EOFError):
        return None
