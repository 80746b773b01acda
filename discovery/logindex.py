"""A per-file index of JSONL metric logs: which steps log which metrics, and entries only where
tables need them.

Reading a log once gives, for each set of metric names logged together, the steps it was logged
at (a "shape": training lines, eval lines, the end-of-training summary). With those, a metric's
latest value at or before any step is found by parsing a handful of lines. Trainer-shaped
lines (`{"step": N, ...}` in step order) are found again by searching for their prefix, so the
index keeps only the entries it was asked for; a file written any other way keeps every entry.
Charts ask for every entry: those full parses are kept for the most recently charted logs.
Growth is read from the last offset, for both; indexes persist on disk.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .indexstore import IndexStore
from .logs import Entry, History, Shape, Source, log_files, merge_into, parse_line, shapes_of
from .paths import open_in

FINGERPRINT = 64
FULL_CACHE = 64  # fully parsed logs kept for charts
# A line longer than this is not a trainer's metric line: it is skipped without being held in
# memory whole, so a multi-gigabyte file without a newline costs a bounded buffer.
MAX_LINE = 1 << 20
CHUNK = 4 << 20
log = logging.getLogger(__name__)


@dataclass
class FileIndex:
    identity: tuple[int, int]
    size: int = 0
    mtime_ns: int = 0
    offset: int = 0  # the end of the last complete line read
    fingerprint: bytes = b""  # the bytes just before `offset`: tells growth from a rewrite
    shapes: list[Shape] = field(default_factory=list)
    entries: dict[int, Entry] = field(default_factory=dict)
    # Every line is `{"step": N, ...}` and steps never go back: a step's lines are found by
    # searching for that prefix, so `entries` need not hold every step.
    findable: bool = True
    skipped: int = 0
    pending_tail: bool = False

    @property
    def skipped_lines(self) -> int:
        return self.skipped + self.pending_tail

    @property
    def last_step(self) -> int | None:
        return max((s[-1] for _, s in self.shapes if len(s)), default=None)

    def fields(self) -> tuple[Any, ...]:
        return (
            self.identity,
            self.size,
            self.mtime_ns,
            self.offset,
            self.fingerprint,
            [(keys, steps.tobytes()) for keys, steps in self.shapes],
            self.entries,
            self.findable,
            self.skipped,
            self.pending_tail,
        )

    @classmethod
    def from_fields(cls, fields: tuple[Any, ...] | None) -> FileIndex | None:
        try:
            identity, size, mtime, offset, fp, shapes, entries, findable, skipped, tail = fields  # type: ignore[misc]
            loaded = []
            for keys, raw in shapes:
                steps = array("q")
                steps.frombytes(raw)
                loaded.append((tuple(keys), steps))
        except (TypeError, ValueError):
            return None
        return cls(
            tuple(identity), size, mtime, offset, fp, loaded, entries, findable, skipped, tail
        )

    def source(self, path: Path, entries: dict[int, Entry]) -> Source:
        return Source(path, tuple(self.shapes), entries, self.skipped_lines)


@dataclass
class Scan:
    """What one pass over complete lines found."""

    entries: dict[int, Entry] = field(default_factory=dict)
    skipped: int = 0
    findable: bool = True
    last: int | None = None  # the last step seen, for the order check

    def overlong(self) -> None:
        self.skipped += 1
        self.findable = False

    def line(self, raw: bytes) -> None:
        if not raw.strip():
            return
        if len(raw) > MAX_LINE:
            self.overlong()
            return
        parsed = parse_line(raw)
        if parsed is None:
            self.skipped += 1
            self.findable = False
            return
        step, values = parsed
        if not raw.startswith(b'{"step": %d, ' % step) or (
            self.last is not None and step < self.last
        ):
            self.findable = False
        self.last = step
        merge_into(self.entries, step, values)


def scan(f: BinaryIO, start: int, end: int, state: Scan | None = None) -> tuple[Scan, int, bool]:
    """Parse the complete lines of `f` in [start, end) in bounded chunks.

    (scan, offset after the last complete line, whether an unterminated tail is pending).
    A tail that parses counts as a line: trainers flush whole lines, so only a torn write or a
    crash leaves one that does not.
    """
    state = state or Scan()
    pos = start
    f.seek(start)
    buf = b""
    overlong = False  # inside a line already longer than MAX_LINE: drop its bytes
    while pos + len(buf) < end:
        chunk = f.read(min(CHUNK, end - pos - len(buf)))
        if not chunk:
            break
        buf += chunk
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            if overlong:
                state.overlong()  # its bytes were dropped as they came
                overlong = False
            else:
                state.line(buf[:nl])
            pos += nl + 1
            buf = buf[nl + 1 :]
        if len(buf) > MAX_LINE:
            overlong = True
            pos += len(buf)
            buf = b""
    pending = False
    if overlong:
        pending = True
    elif buf.strip():
        if len(buf) <= MAX_LINE and parse_line(buf) is not None:
            state.line(buf)
            pos += len(buf)
        else:
            pending = True  # a write in progress, or a crash mid-line
    return state, pos, pending


def _extend(shapes: list[Shape], entries: dict[int, Entry], after: int | None) -> list[Shape]:
    """`shapes` with the steps of `entries` (all after `after`) added to their key sets."""
    by_keys = {keys: array("q", steps) for keys, steps in shapes}
    for keys, steps in shapes_of(entries):
        if after is not None and len(steps) and steps[0] == after:
            # The last indexed step got more lines: its key set grew, so it moves shape.
            for other in by_keys.values():
                if len(other) and other[-1] == after:
                    other.pop()
        by_keys.setdefault(keys, array("q")).extend(steps)
    return [(k, s) for k, s in by_keys.items() if len(s)]


@dataclass
class _Open:
    key: str
    path: Path
    f: BinaryIO
    idx: FileIndex
    all_entries: dict[int, Entry] | None  # every entry, when the index was just built


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

    def index(self, path: Path, root: Path) -> FileIndex | None:
        with self._lock:
            f = open_in(path, root)
            if f is None:
                return None
            with f:
                try:
                    return self._index(str(path), f)[0]
                except OSError:
                    return None

    def _index(self, key: str, f: BinaryIO) -> tuple[FileIndex, dict[int, Entry] | None]:
        """The file's index, and every entry when it had to be read in full to build it."""
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
        found, offset, pending = scan(f, 0, st.st_size)
        idx = FileIndex(
            identity,
            st.st_size,
            st.st_mtime_ns,
            offset,
            b"",
            list(shapes_of(found.entries)),
            {} if found.findable else found.entries,
            found.findable,
            found.skipped,
            pending,
        )
        if found.skipped:
            # Once per version of the file: the index is kept, so later requests stay quiet.
            log.warning("%s: skipped %d malformed line(s)", key, found.skipped)
        return self._keep(key, idx, f), found.entries

    def _keep(self, key: str, idx: FileIndex, f: BinaryIO) -> FileIndex:
        start = max(idx.offset - FINGERPRINT, 0)
        idx.fingerprint = _read_at(f, start, idx.offset - start)
        self._indexes[key] = idx
        self._save(key, idx)  # queued: a later save of the same file replaces it
        return idx

    def _grow(self, key: str, old: FileIndex, f: BinaryIO, st: os.stat_result) -> FileIndex | None:
        """Parse only the appended bytes; None when they break the index's assumptions."""
        last = old.last_step
        found, offset, pending = scan(f, old.offset, st.st_size, Scan(last=last))
        new_steps = sorted(found.entries)
        if new_steps and last is not None and new_steps[0] < last:
            return None  # steps went back: rebuild from the start
        appended = found.entries
        if new_steps and new_steps[0] == last:
            # More lines at the last indexed step: merge them with its earlier lines first.
            earlier = old.entries.get(last) if not old.findable else None
            if earlier is None and old.findable:
                earlier = self._resolve_in(f, old, {last}).get(last)
            appended = {**appended, last: {**(earlier or {}), **appended[last]}}
        if old.findable and not found.findable:
            return None  # the appended lines cannot be found by prefix: index the file in full
        # Appended entries are kept: a training run's next poll asks for its newest lines.
        entries = {**old.entries, **appended}
        grown = FileIndex(
            old.identity,
            st.st_size,
            st.st_mtime_ns,
            offset,
            b"",
            _extend(old.shapes, appended, last),
            entries,
            old.findable and found.findable,
            old.skipped + found.skipped,
            pending,
        )
        full = self._full.get(key)
        if full is not None and full[:2] == (old.identity, old.offset):
            # A charted log keeps its full parse: the appended entries go into a copy.
            extended = dict(full[2])
            extended.update(appended)
            self._full[key] = (old.identity, grown.offset, extended)
        if found.skipped:
            log.warning("%s: skipped %d malformed appended line(s)", key, found.skipped)
        return grown

    def _resolve_in(self, f: BinaryIO, idx: FileIndex, wanted: Iterable[int]) -> dict[int, Entry]:
        """Entries at `wanted` steps of a findable file: its lines are in step order and start
        with their step, so each is found by a binary search over byte offsets."""
        found: dict[int, Entry] = {}
        for step in sorted(wanted):
            start = _first_line_at_or_after(f, idx.offset, step)
            entry = _group_from(f, idx.offset, start, step)
            if entry is not None:
                found[step] = entry
        return found

    def _open_all(self, paths: Sequence[Path], root: Path, stack: ExitStack) -> list[_Open]:
        if self._store is not None:
            self._store.touch()
        opened = []
        for p in paths:
            f = open_in(p, root)
            if f is None:
                continue
            stack.enter_context(f)
            try:
                idx, all_entries = self._index(str(p), f)
            except OSError:
                continue
            opened.append(_Open(str(p), p, f, idx, all_entries))
        return opened

    def summary(self, paths: Sequence[Path], root: Path, targets: Iterable[int]) -> list[Source]:
        """Each file's metric steps, with the entries that answer "latest value at or before"
        each target step and the file's last step."""
        targets = list(targets)
        with self._lock, ExitStack() as stack:
            sources = []
            for o in self._open_all(paths, root, stack):
                idx = o.idx
                probe = idx.source(o.path, {})
                wanted = {s for t in [*targets, MAX_TARGET] for s in probe.candidates(t)}
                entries = self._entries_at(o, wanted)
                sources.append(idx.source(o.path, entries))
            return sources

    def _entries_at(self, o: _Open, wanted: set[int]) -> dict[int, Entry]:
        idx = o.idx
        if not idx.findable:
            return {s: idx.entries[s] for s in wanted if s in idx.entries}
        if o.all_entries is not None:
            found = {s: o.all_entries[s] for s in wanted if s in o.all_entries}
        else:
            found = {s: idx.entries[s] for s in wanted if s in idx.entries}
            missing = wanted - found.keys()
            if missing:
                with suppress(OSError):
                    found |= self._resolve_in(o.f, idx, missing)
        if found.keys() - idx.entries.keys():
            idx.entries = {**idx.entries, **found}
            self._save(o.key, idx)
        return found

    def full(self, paths: Sequence[Path], root: Path) -> list[Source]:
        """Every entry of each file."""
        with self._lock, ExitStack() as stack:
            return [
                o.idx.source(o.path, self._all_entries(o))
                for o in self._open_all(paths, root, stack)
            ]

    def _all_entries(self, o: _Open) -> dict[int, Entry]:
        idx = o.idx
        if not idx.findable:
            return idx.entries
        if o.all_entries is not None:
            entries = o.all_entries
        else:
            hit = self._full.get(o.key)
            if hit is not None and hit[:2] == (idx.identity, idx.offset):
                self._full.move_to_end(o.key)
                return hit[2]
            entries = scan(o.f, 0, idx.offset)[0].entries
        self._full[o.key] = (idx.identity, idx.offset, entries)
        while len(self._full) > FULL_CACHE:
            self._full.popitem(last=False)
        return entries


MAX_TARGET = 2**63 - 1  # "at or before the end": each file's last values
SEARCH_WINDOW = 64 << 10
STEP_PREFIX = re.compile(rb'\{"step": (\d{1,18}), ')


def _step_after(f: BinaryIO, pos: int, end: int) -> tuple[int, int] | None:
    """(offset, step) of the first line starting after `pos` (or at 0), within `end`."""
    f.seek(pos)
    if pos > 0:
        f.readline(MAX_LINE + 1)  # the rest of the line `pos` falls in
    start = f.tell()
    if start >= end:
        return None
    m = STEP_PREFIX.match(f.read(40))
    return (start, int(m.group(1))) if m else None


def _first_line_at_or_after(f: BinaryIO, end: int, step: int) -> int:
    """The offset of the first line whose step is `step` or more (or `end`)."""
    lo, hi = 0, end  # the answer lies in [lo, hi]
    while hi - lo > SEARCH_WINDOW // 2:
        mid = (lo + hi) // 2
        found = _step_after(f, mid, end)
        if found is None:
            hi = mid
        elif found[1] < step:
            lo = found[0]
        else:
            hi = mid if found[0] > mid else found[0]
    # Within a window: walk its lines.
    f.seek(lo)
    if lo > 0:
        f.readline(MAX_LINE + 1)
    pos = f.tell()
    while pos < end:
        line = f.readline(MAX_LINE + 1)
        if not line:
            break
        m = STEP_PREFIX.match(line)
        if m and int(m.group(1)) >= step:
            return pos
        pos += len(line)
    return end


def _group_from(f: BinaryIO, end: int, start: int, step: int) -> Entry | None:
    f.seek(start)
    prefix = b'{"step": %d, ' % step
    merged: Entry | None = None
    pos = start
    while pos < end:
        raw = f.readline(MAX_LINE + 1)
        if not raw:
            break
        pos += len(raw)
        if not raw.startswith(prefix):
            break
        parsed = parse_line(raw.rstrip(b"\n"))
        if parsed is not None:
            merged = parsed[1] if merged is None else {**merged, **parsed[1]}
    return merged


def _read_at(f: BinaryIO, offset: int, size: int) -> bytes:
    f.seek(offset)
    return f.read(size)


indexer = LogIndexer()


def read_summary(run_dir: Path, root: Path, targets: Iterable[int] = ()) -> History:
    """The run's logs, with every metric's latest value at each target step answerable."""
    files = log_files(run_dir, root)
    return History(tuple(indexer.summary(files, root, targets)), False, tuple(files))


def read_history(run_dir: Path, root: Path) -> History:
    """Every entry of a run's logs, for charts."""
    files = log_files(run_dir, root)
    return History(tuple(indexer.full(files, root)), True, tuple(files))
