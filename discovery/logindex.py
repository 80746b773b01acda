"""A per-file index of a JSONL metric log: every step, and parsed entries only where needed.

The run list and checkpoint tables need entries at a few steps (checkpoints, the last step)
out of thousands. One regex pass over the bytes finds the step of every line written the
way trainers write them (`{"step": N, ...}`); only the lines at the wanted steps are parsed.
A file with any other kind of line, or with steps going backwards, is parsed in full instead,
which is always correct. Charts ask for every entry: those full parses are kept for the most
recently charted logs. Growth is read from the last offset, for both; indexes persist on disk.
"""

from __future__ import annotations

import bisect
import heapq
import logging
import os
import re
import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .indexstore import IndexStore
from .logs import Entry, History, log_files, merge_into, parse_line, parse_lines

# Every line yields one match: its step when trainer-shaped, else an empty string. Steps of
# 19 digits or more may not fit int64; such a file takes the full parse, which skips them.
STEP_LINE = re.compile(rb'^(?:\{"step": (\d{1,18}), [^\n]*\}\r?|[^\n]*)$', re.MULTILINE)
FINGERPRINT = 64
FULL_CACHE = 64  # fully parsed logs kept for charts
log = logging.getLogger(__name__)


@dataclass
class FileIndex:
    identity: tuple[int, int]
    size: int = 0
    mtime_ns: int = 0
    offset: int = 0
    fingerprint: bytes = b""
    steps: array = field(default_factory=lambda: array("q"))
    entries: dict[int, Entry] = field(default_factory=dict)
    complete: bool = False  # entries hold every step
    skipped: int = 0
    pending_tail: bool = False

    @property
    def skipped_lines(self) -> int:
        return self.skipped + self.pending_tail

    def fields(self) -> tuple[Any, ...]:
        return (
            self.identity,
            self.size,
            self.mtime_ns,
            self.offset,
            self.fingerprint,
            self.steps.tobytes(),
            self.entries,
            self.complete,
            self.skipped,
            self.pending_tail,
        )

    @classmethod
    def from_fields(cls, fields: tuple[Any, ...] | None) -> FileIndex | None:
        try:
            identity, size, mtime, offset, fp, steps, entries, complete, skipped, tail = fields  # type: ignore[misc]
        except (TypeError, ValueError):
            return None
        s = array("q")
        s.frombytes(steps)
        return cls(tuple(identity), size, mtime, offset, fp, s, entries, complete, skipped, tail)


def _fast_steps(body: bytes) -> array | None:
    """Unique steps of `body` when every line is trainer-shaped and steps never go back."""
    found = STEP_LINE.findall(body)
    if body.endswith(b"\n"):
        found.pop()  # the empty "line" after the last newline
    if b"" in found:
        return None  # a blank, broken or differently written line: parse the file in full
    steps = array("q", map(int, found))
    if steps != array("q", sorted(steps)):
        return None
    return array("q", dict.fromkeys(steps))


def build(data: bytes) -> tuple[array, dict[int, Entry], bool, int, int, bool]:
    """(steps, entries, complete, skipped, offset, pending_tail) for a file's bytes."""
    end = data.rfind(b"\n") + 1
    tail = data[end:]
    pending = False
    if tail.strip():
        if parse_line(tail) is None:
            pending = True  # a write in progress, or a crash mid-line
        else:
            end = len(data)
    body = data[:end]
    steps = _fast_steps(body)
    if steps is None:
        parsed = parse_lines(body)
        return (
            array("q", sorted(parsed.entries)),
            parsed.entries,
            True,
            parsed.skipped,
            end,
            pending,
        )
    return steps, {}, False, 0, end, pending


def _group(data: bytes, step: int, start: int) -> tuple[Entry | None, int]:
    """Merge the consecutive lines of `step` from the first one at or after `start`.

    `start` is always a line start; steps never go back in an indexed file, so a step's
    lines are consecutive and later searches can begin where this one ended.
    """
    prefix = b'{"step": %d, ' % step
    if start == 0 and data.startswith(prefix):
        pos = 0
    else:
        pos = data.find(b"\n" + prefix, max(start - 1, 0))
        if pos < 0:
            return None, start
        pos += 1
    merged: Entry | None = None
    while pos < len(data) and data.startswith(prefix, pos):
        nl = data.find(b"\n", pos)
        nl = len(data) if nl < 0 else nl
        parsed = parse_line(data[pos:nl])
        if parsed is not None:
            merged = parsed[1] if merged is None else {**merged, **parsed[1]}
        pos = nl + 1
    return merged, pos


@dataclass
class _Open:
    key: str
    f: BinaryIO
    idx: FileIndex
    data: bytes | None  # the file's bytes, when building its index had to read them all


class LogIndexer:
    """Indexes of log files, in memory and (when given a folder) on disk."""

    def __init__(self, store: Path | None = None) -> None:
        self._lock = threading.RLock()
        self._indexes: dict[str, FileIndex] = {}
        # Every entry of the most recently charted logs: (identity, offset, entries).
        self._full: OrderedDict[str, tuple[tuple[int, int], int, dict[int, Entry]]] = OrderedDict()
        self._store = IndexStore(store) if store is not None else None

    @property
    def store(self) -> Path | None:
        return self._store.folder if self._store is not None else None

    def configure(self, store: Path | None) -> None:
        self.flush()
        with self._lock:
            self._store = IndexStore(store) if store is not None else None
            self._indexes.clear()
            self._full.clear()

    def flush(self) -> None:
        """Write every pending index now."""
        if self._store is not None:
            self._store.flush()

    def clear(self) -> None:
        with self._lock:
            self._indexes.clear()
            self._full.clear()

    def _save(self, key: str, idx: FileIndex) -> None:
        if self._store is not None:
            self._store.save(key, idx.fields())

    def index(self, path: Path) -> FileIndex | None:
        with self._lock:
            try:
                with open(path, "rb") as f:
                    return self._index(str(path), f)[0]
            except OSError:
                return None

    def _index(self, key: str, f: BinaryIO) -> tuple[FileIndex, bytes | None]:
        """The file's index, and its bytes when they had to be read in full to build it."""
        st = os.fstat(f.fileno())
        identity = (st.st_dev, st.st_ino)
        old = self._indexes.get(key)
        if old is None and self._store is not None:
            old = FileIndex.from_fields(self._store.load(key))
        if old is not None and old.identity == identity:
            if (old.size, old.mtime_ns) == (st.st_size, st.st_mtime_ns):
                self._indexes[key] = old
                return old, None
            mark = _read_at(f, old.offset - len(old.fingerprint), len(old.fingerprint))
            if st.st_size >= old.offset and mark == old.fingerprint:
                grown = self._grow(key, old, f, st)
                if grown is not None:
                    return self._keep(key, grown, f), None
        # New, replaced, truncated or rewritten: read from the start.
        self._full.pop(key, None)
        data = _read_at(f, 0, st.st_size)
        steps, entries, complete, skipped, offset, pending = build(data)
        idx = FileIndex(
            identity, st.st_size, st.st_mtime_ns, offset, b"", steps, entries, complete, skipped
        )
        idx.pending_tail = pending
        if skipped:
            # Once per version of the file: the index is kept, so later requests stay quiet.
            log.warning("%s: skipped %d malformed line(s)", key, skipped)
        return self._keep(key, idx, f), data[:offset]

    def _keep(self, key: str, idx: FileIndex, f: BinaryIO) -> FileIndex:
        start = max(idx.offset - FINGERPRINT, 0)
        idx.fingerprint = _read_at(f, start, idx.offset - start)
        self._indexes[key] = idx
        self._save(key, idx)  # queued: a later save of the same file replaces it
        return idx

    def _grow(self, key: str, old: FileIndex, f: BinaryIO, st: os.stat_result) -> FileIndex | None:
        """Parse only the appended bytes; None when they break the index's assumptions."""
        chunk = _read_at(f, old.offset, st.st_size - old.offset)
        parsed = parse_lines(chunk)
        new_steps = sorted(parsed.entries)
        last = old.steps[-1] if old.steps else None
        if new_steps and last is not None and new_steps[0] < last:
            return None  # steps went back: rebuild from the start
        entries = dict(old.entries)
        if new_steps and new_steps[0] == last and not old.complete and last not in entries:
            # The appended lines add to the last step: its earlier lines must be merged first.
            entries.update(self._resolve_in(f, old, {last}))
        for step in new_steps:
            merge_into(entries, step, parsed.entries[step])
        steps = array("q", old.steps)
        steps.extend(s for s in new_steps if last is None or s > last)
        grown = FileIndex(
            old.identity,
            st.st_size,
            st.st_mtime_ns,
            old.offset + parsed.consumed,
            b"",
            steps,
            entries,
            old.complete,
            old.skipped + parsed.skipped,
        )
        grown.pending_tail = parsed.pending_tail
        full = self._full.get(key)
        if full is not None and full[:2] == (old.identity, old.offset):
            # A charted log keeps its full parse: the appended entries are merged into a copy.
            extended = dict(full[2])
            for step in new_steps:
                merge_into(extended, step, parsed.entries[step])
            self._full[key] = (old.identity, grown.offset, extended)
        if parsed.skipped:
            log.warning("%s: skipped %d malformed appended line(s)", key, parsed.skipped)
        return grown

    def _resolve_in(
        self, f: BinaryIO, idx: FileIndex, wanted: Iterable[int], data: bytes | None = None
    ) -> dict[int, Entry]:
        if data is None:
            data = _read_at(f, 0, idx.offset)
        found: dict[int, Entry] = {}
        start = 0
        for step in sorted(wanted):
            entry, start = _group(data, step, start)
            if entry is not None:
                found[step] = entry
        return found

    def _open_all(self, paths: Sequence[Path], stack: ExitStack) -> list[_Open]:
        if self._store is not None:
            self._store.last_use = time.monotonic()
        opened = []
        for p in paths:
            try:
                f = stack.enter_context(open(p, "rb"))  # noqa: SIM115  closed by the stack
                idx, data = self._index(str(p), f)
            except OSError:
                continue
            opened.append(_Open(str(p), f, idx, data))
        return opened

    def summary(
        self, paths: Sequence[Path], wanted_for: Callable[[Sequence[int]], set[int]]
    ) -> History:
        """Every logged step of one run's files, with merged entries at the wanted steps.

        `wanted_for` gets the run's merged steps and names the steps whose entries are needed.
        Files are merged oldest first, so a newer file wins for the steps it repeats.
        """
        with self._lock, ExitStack() as stack:
            opened = self._open_all(paths, stack)
            steps = _merged_steps([o.idx.steps for o in opened])
            wanted = wanted_for(steps)
            merged: dict[int, Entry] = {}
            for o in opened:
                idx = o.idx
                logged = {s for s in wanted if _contains(idx.steps, s)}
                missing = logged - idx.entries.keys()
                if missing and not idx.complete:
                    try:
                        found = self._resolve_in(o.f, idx, missing, o.data)
                    except OSError:
                        found = {}
                    idx.entries = {**idx.entries, **found}
                    self._save(o.key, idx)
                for step in sorted(logged):
                    values = idx.entries.get(step)
                    if values is not None:
                        merge_into(merged, step, values)
            skipped = sum(o.idx.skipped_lines for o in opened)
            return History(steps, merged, skipped, tuple(paths), complete=False)

    def full(self, paths: Sequence[Path]) -> History:
        """Every entry of one run's files, merged per step, newer files winning."""
        with self._lock, ExitStack() as stack:
            opened = self._open_all(paths, stack)
            merged: dict[int, Entry] = {}
            for o in opened:
                for step, values in self._all_entries(o).items():
                    merge_into(merged, step, values)
            steps = tuple(_merged_steps([o.idx.steps for o in opened]))
            skipped = sum(o.idx.skipped_lines for o in opened)
            return History(steps, merged, skipped, tuple(paths), complete=True)

    def _all_entries(self, o: _Open) -> dict[int, Entry]:
        idx = o.idx
        if idx.complete:
            return idx.entries
        hit = self._full.get(o.key)
        if hit is not None and hit[:2] == (idx.identity, idx.offset):
            self._full.move_to_end(o.key)
            return hit[2]
        data = o.data if o.data is not None else _read_at(o.f, 0, idx.offset)
        entries = parse_lines(data[: idx.offset]).entries
        self._full[o.key] = (idx.identity, idx.offset, entries)
        while len(self._full) > FULL_CACHE:
            self._full.popitem(last=False)
        return entries


def _merged_steps(lists: list[array]) -> Sequence[int]:
    if len(lists) == 1:
        return lists[0]
    return tuple(dict.fromkeys(heapq.merge(*lists)))


def _contains(steps: array, step: int) -> bool:
    i = bisect.bisect_left(steps, step)
    return i < len(steps) and steps[i] == step


def _read_at(f: BinaryIO, offset: int, size: int) -> bytes:
    f.seek(offset)
    return f.read(size)


indexer = LogIndexer()


def read_summary(run_dir: Path, root: Path, checkpoint_steps: Iterable[int] = ()) -> History:
    """Entries at each checkpoint step (or the nearest earlier logged one) and at the last step."""
    wanted_steps = list(checkpoint_steps)

    def wanted_for(steps: Sequence[int]) -> set[int]:
        probe = History(steps, {})
        wanted = {probe.nearest(s) for s in wanted_steps} | {probe.last_step}
        return {s for s in wanted if s is not None}

    return indexer.summary(log_files(run_dir, root), wanted_for)


def read_history(run_dir: Path, root: Path) -> History:
    """Every entry of a run's logs, for charts."""
    return indexer.full(log_files(run_dir, root))
