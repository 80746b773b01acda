"""A per-file index of a JSONL metric log: every step, and parsed entries only where needed.

The run list and checkpoint tables need entries at a few steps (checkpoints, the last step)
out of thousands. One regex pass over the bytes finds the step of every line written the
way trainers write them (`{"step": N, ...}`); only the lines at the wanted steps are parsed.
A file with any other kind of line, or with steps going backwards, is parsed in full instead,
which is always correct. Growth is read from the last offset; indexes persist on disk.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import logging
import marshal
import os
import re
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .jsonl import Entry, LogState, parse_line

# Every line yields one match: its step when trainer-shaped, else an empty string. Steps of
# 19 digits or more may not fit int64; such a file takes the full parse, which skips them.
STEP_LINE = re.compile(rb'^(?:\{"step": (\d{1,18}), [^\n]*\}\r?|[^\n]*)$', re.MULTILINE)
FORMAT = 1
FINGERPRINT = 64
IDLE_BEFORE_WRITE = 0.5
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

    def dump(self) -> bytes:
        return marshal.dumps(
            (
                FORMAT,
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
        )

    @classmethod
    def load(cls, data: bytes) -> FileIndex | None:
        try:
            fmt, identity, size, mtime, offset, fp, steps, entries, complete, skipped, tail = (
                marshal.loads(data)
            )
        except (EOFError, ValueError, TypeError):
            return None
        if fmt != FORMAT:
            return None
        s = array("q")
        s.frombytes(steps)
        return cls(tuple(identity), size, mtime, offset, fp, s, entries, complete, skipped, tail)


def _full(data: bytes) -> tuple[array, dict[int, Entry], int, int, bool]:
    state = LogState(identity=(0, 0))
    state.feed(data)
    return (
        array("q", sorted(state.entries)),
        state.entries,
        state.skipped,
        state.offset,
        state.pending_tail,
    )


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
        steps, entries, skipped, _, _ = _full(body)
        return steps, entries, True, skipped, end, pending
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


class LogIndexer:
    """Indexes of log files, in memory and (when given a folder) on disk."""

    def __init__(self, store: Path | None = None) -> None:
        self._lock = threading.RLock()
        self._indexes: dict[str, FileIndex] = {}
        self.store = store
        # Writing indexes to disk is slow on some filesystems; requests never wait for it.
        self._dirty: dict[str, FileIndex] = {}
        self._wake = threading.Condition()
        self._writer: threading.Thread | None = None
        self._last_use = 0.0

    def configure(self, store: Path | None) -> None:
        self.flush()
        with self._lock:
            self.store = store
            self._indexes.clear()

    def flush(self) -> None:
        """Write every pending index now."""
        with self._wake:
            pending, self._dirty = self._dirty, {}
        for key, idx in pending.items():
            self._write(key, idx)

    def clear(self) -> None:
        with self._lock:
            self._indexes.clear()

    def _store_path(self, key: str) -> Path | None:
        if self.store is None:
            return None
        return self.store / (hashlib.sha1(key.encode()).hexdigest() + ".idx")

    def _load(self, key: str) -> FileIndex | None:
        p = self._store_path(key)
        try:
            return FileIndex.load(p.read_bytes()) if p else None
        except OSError:
            return None

    def _save(self, key: str, idx: FileIndex) -> None:
        if self.store is None:
            return
        with self._wake:
            self._dirty[key] = idx
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_loop, daemon=True)
                self._writer.start()
            self._wake.notify()

    def _write_loop(self) -> None:
        while True:
            with self._wake:
                while not self._dirty:
                    self._wake.wait()
                # Let a burst of indexing finish first: writing competes with it for the GIL.
                idle = time.monotonic() - self._last_use
                if idle < IDLE_BEFORE_WRITE:
                    self._wake.wait(IDLE_BEFORE_WRITE - idle)
                    continue
                key, idx = self._dirty.popitem()
            self._write(key, idx)

    def _write(self, key: str, idx: FileIndex) -> None:
        p = self._store_path(key)
        if p is None:
            return
        try:
            p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = p.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(idx.dump())
            os.replace(tmp, p)
        except OSError:
            pass  # a read-only data folder costs speed after a restart, nothing else

    def is_fresh(self, path: Path) -> bool:
        """Indexed in memory and unchanged since: answering needs no reading."""
        idx = self._indexes.get(str(path))
        if idx is None:
            return False
        try:
            st = os.stat(path)
        except OSError:
            return False
        return (idx.identity, idx.size, idx.mtime_ns) == (
            (st.st_dev, st.st_ino),
            st.st_size,
            st.st_mtime_ns,
        )

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
        old = self._indexes.get(key) or self._load(key)
        if old is not None and old.identity == identity:
            if (old.size, old.mtime_ns) == (st.st_size, st.st_mtime_ns):
                self._indexes[key] = old
                return old, None
            mark = _read_at(f, old.offset - len(old.fingerprint), len(old.fingerprint))
            if st.st_size >= old.offset and mark == old.fingerprint:
                grown = self._grow(old, f, st)
                if grown is not None:
                    return self._keep(key, grown, f), None
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

    def _grow(self, old: FileIndex, f: BinaryIO, st: os.stat_result) -> FileIndex | None:
        """Parse only the appended bytes; None when they break the index's assumptions."""
        chunk = _read_at(f, old.offset, st.st_size - old.offset)
        state = LogState(identity=old.identity)
        state.feed(chunk)
        new_steps = sorted(state.entries)
        last = old.steps[-1] if old.steps else None
        if new_steps and last is not None and new_steps[0] < last:
            return None  # steps went back: rebuild from the start
        entries = dict(old.entries)
        if new_steps and new_steps[0] == last and not old.complete and last not in entries:
            # The appended lines add to the last step: its earlier lines must be merged first.
            entries.update(self._resolve_in(f, old, {last}))
        for step in new_steps:
            values = state.entries[step]
            entries[step] = {**entries[step], **values} if step in entries else values
        steps = array("q", old.steps)
        steps.extend(s for s in new_steps if last is None or s > last)
        grown = FileIndex(
            old.identity,
            st.st_size,
            st.st_mtime_ns,
            old.offset + state.offset,
            b"",
            steps,
            entries,
            old.complete,
            old.skipped + state.skipped,
        )
        grown.pending_tail = state.pending_tail
        if state.skipped:
            log.warning("%s: skipped %d malformed appended line(s)", f.name, state.skipped)
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

    def lookup(
        self, paths: list[Path], wanted_for: Callable[[Sequence[int]], set[int]]
    ) -> tuple[Sequence[int], dict[int, Entry], int]:
        """(every logged step, merged entries at the wanted steps, skipped lines) of one run.

        `wanted_for` gets the run's merged steps and names the steps whose entries are needed.
        Files are merged oldest first, so a newer file wins for the steps it repeats.
        """
        self._last_use = time.monotonic()
        with self._lock, ExitStack() as stack:
            opened = []
            for p in paths:
                try:
                    f = stack.enter_context(open(p, "rb"))
                    idx, data = self._index(str(p), f)
                except OSError:
                    continue
                opened.append((str(p), f, idx, data))
            lists = [idx.steps for _, _, idx, _ in opened]
            steps: Sequence[int] = (
                lists[0] if len(lists) == 1 else tuple(dict.fromkeys(heapq.merge(*lists)))
            )
            wanted = wanted_for(steps)
            merged: dict[int, Entry] = {}
            skipped = 0
            for key, f, idx, data in opened:
                skipped += idx.skipped_lines
                logged = {s for s in wanted if _contains(idx.steps, s)}
                missing = logged - idx.entries.keys()
                if missing and not idx.complete:
                    try:
                        found = self._resolve_in(f, idx, missing, data)
                    except OSError:
                        found = {}
                    idx.entries = {**idx.entries, **found}
                    self._save(key, idx)
                for step in sorted(logged):
                    values = idx.entries.get(step)
                    if values is not None:
                        merged[step] = {**merged[step], **values} if step in merged else values
            return steps, merged, skipped


def _contains(steps: array, step: int) -> bool:
    i = bisect.bisect_left(steps, step)
    return i < len(steps) and steps[i] == step


def _read_at(f, offset: int, size: int) -> bytes:
    f.seek(offset)
    return f.read(size)


indexer = LogIndexer()
