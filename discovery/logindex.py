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
import time
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from . import caches
from .indexstore import IndexStore, store_file
from .logs import Entry, History, Shape, Source, log_files, merge_into, parse_line, shapes_of
from .paths import FileKey, open_in, stat_key

FINGERPRINT = 64
FULL_CACHE = 64  # fully parsed logs kept for charts
# A line longer than this is not a trainer's metric line: it is skipped without being held in
# memory whole, so a multi-gigabyte file without a newline costs a bounded buffer.
MAX_LINE = 1 << 20
CHUNK = 4 << 20
log = logging.getLogger(__name__)


@dataclass
class FileIndex:
    identity: tuple[int, int]  # a FileKey's file part: (device, inode)
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
    # Read in full (or grown from such a read): shapes and skipped lines are exact. A first
    # answer read from a few windows of the file is not, until the background pass ends.
    verified: bool = True
    probed: set[int] | None = field(default=None, compare=False)  # steps a first answer read

    @property
    def key(self) -> FileKey:
        return (*self.identity, self.size, self.mtime_ns)

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
            self.verified,
        )

    @classmethod
    def from_fields(cls, fields: tuple[Any, ...] | None) -> FileIndex | None:
        try:
            identity, size, mtime, offset, fp, shapes, entries, findable, skipped, tail, ok = fields  # type: ignore[misc]
            loaded = []
            for keys, raw in shapes:
                steps = array("q")
                steps.frombytes(raw)
                loaded.append((tuple(keys), steps))
        except (TypeError, ValueError):
            return None
        return cls(
            tuple(identity), size, mtime, offset, fp, loaded, entries, findable, skipped, tail, ok
        )

    def source(self, path: Path, entries: dict[int, Entry]) -> Source:
        return Source(path, tuple(self.shapes), entries, self.skipped_lines, not self.verified)

    def wanted(self, path: Path, targets: Iterable[int]) -> set[int]:
        """The steps whose entries answer "latest value at or before" each target step, and
        the file's last values."""
        shapes = self.source(path, {})
        return {s for t in [*targets, MAX_TARGET] for s in shapes.candidate_set(t)}


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
        # The default form first, one bytes formatting a line: this runs for every line.
        if not (
            raw.startswith(b'{"step": %d, ' % step) or raw.startswith(b'{"step":%d,' % step)
        ) or (self.last is not None and step < self.last):
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
        # Lines are cut at offsets into the chunk: slicing off each line's rest would copy
        # the whole chunk once per line.
        at = 0
        while True:
            nl = buf.find(b"\n", at)
            if nl < 0:
                break
            if overlong:
                state.overlong()  # its bytes were dropped as they came
                overlong = False
            else:
                state.line(buf[at:nl])
            at = nl + 1
        pos += at
        buf = buf[at:]
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
    """Indexes of log files, in memory and (when given a folder) on disk, one store per root.

    With `background` on (the web server), a log never seen before is answered from a few
    windows of it (`probe`), and read in full by a background pass (in a second process where
    there are cores for one), which then replaces the first answer. Otherwise (commands, the
    library) it is read in full before answering.
    """

    def __init__(self, store: Path | None = None) -> None:
        self._lock = threading.RLock()
        self._indexes: dict[str, FileIndex] = {}
        # Every entry of the most recently charted logs: (identity, offset, entries).
        self._full: OrderedDict[str, tuple[tuple[int, int], int, dict[int, Entry]]] = OrderedDict()
        self._folder = store
        self._stores: dict[Path, IndexStore] = {}
        self.background = False
        self._versions: dict[str, int] = {}  # bumped when a background pass corrects a file
        self._verifier = Verifier(self)

    @property
    def store(self) -> Path | None:
        return self._folder

    def configure(self, store: Path | None, background: bool = False) -> None:
        self.flush()
        with self._lock:
            self._folder = store
            self._stores.clear()
            self._indexes.clear()
            self._full.clear()
            self._versions.clear()
            self.background = background

    def flush(self) -> None:
        """Write every pending index now."""
        for st in list(self._stores.values()):
            st.flush()

    def clear(self) -> None:
        with self._lock:
            self._indexes.clear()
            self._full.clear()

    def _store(self, root: Path) -> IndexStore | None:
        if self._folder is None:
            return None
        found = self._stores.get(root)
        if found is None:
            found = self._stores[root] = IndexStore(store_file(self._folder, root))
        return found

    def _save(self, key: str, idx: FileIndex, root: Path) -> None:
        # A first answer is not kept on disk: probing again costs less than writing it, and
        # its check's exact index is saved when it ends.
        st = self._store(root) if idx.verified else None
        if st is not None:
            st.save(key, idx.fields())

    def kept(self, root: Path, key: str) -> tuple[Any, ...] | None:
        """The row an earlier process kept under `key` in `root`'s store, read once."""
        with self._lock:
            st = self._store(root)
        return st.load(key) if st is not None else None

    def peek_kept(self, root: Path, key: str) -> tuple[Any, ...] | None:
        """The row `kept` would return, left in the store for it."""
        with self._lock:
            st = self._store(root)
        return st.peek(key) if st is not None else None

    def keep(self, root: Path, key: str, fields: tuple[Any, ...]) -> None:
        """Keep `fields` under `key` in `root`'s store, written with the indexes."""
        with self._lock:
            st = self._store(root)
        if st is not None:
            st.save(key, fields)

    def version(self, path: Path | str) -> int:
        """Changes when a background pass corrects what was known of `path`."""
        return self._versions.get(str(path), 0)

    @contextmanager
    def first_answers(self) -> Iterator[set[str]]:
        """Within, a log never read is answered from windows as a server answers it, and its
        path is collected (yielded) rather than checked here: a command hands the check on to
        a process that outlives it."""
        held: set[str] = set()
        with self._lock:
            was, self.background = self.background, True
            self._verifier.hold = held
        try:
            yield held
        finally:
            with self._lock:
                self.background = was
                self._verifier.hold = None

    def unread_bytes(self, logs: Iterable[tuple[Path, Path]]) -> int:
        """Bytes of those of these logs (path, root) that no index here or in the store covers."""
        total = 0
        with self._lock:
            for path, root in logs:
                if not self._known(str(path), root):
                    with suppress(OSError):
                        total += os.stat(path).st_size
        return total

    def checking(self) -> int:
        """Logs whose first answer a background pass is still checking."""
        return self._verifier.pending()

    def wait(self, timeout: float | None = None) -> bool:
        """Until every background pass queued so far has ended; False on timeout."""
        return self._verifier.wait(timeout)

    def index(self, path: Path, root: Path) -> FileIndex | None:
        with self._lock:
            f = open_in(path, root)
            if f is None:
                return None
            with f:
                try:
                    return self._index(str(path), f, root, ())[0]
                except OSError:
                    return None

    def _index(
        self, key: str, f: BinaryIO, root: Path, targets: Sequence[int]
    ) -> tuple[FileIndex, dict[int, Entry] | None]:
        """The file's index, and the entries it read while building it (all of them after a
        full read; those near `targets` after a probe)."""
        st = os.fstat(f.fileno())
        now = stat_key(st)
        identity = (now[0], now[1])
        old = self._indexes.get(key)
        store = self._store(root)
        if old is None and store is not None:
            old = FileIndex.from_fields(store.load(key))
        if old is not None and not old.verified:
            if self.background:
                self._verifier.queue(key, root, targets)  # a first answer, kept by an older version
            else:
                old = None  # a command answers exactly: read it in full
        if old is not None and old.identity == identity:
            if old.key == now:
                self._indexes[key] = old
                return old, None
            mark = _read_at(f, old.offset - len(old.fingerprint), len(old.fingerprint))
            if st.st_size >= old.offset and mark == old.fingerprint:
                grown = self._grow(key, old, f, st)
                if grown is not None:
                    return self._keep(key, grown, f, root), None
        # New, replaced, truncated or rewritten: read from the start.
        self._full.pop(key, None)
        if self.background:
            probed = probe(f, st.st_size, targets)
            if probed is not None:
                entries, offset, pending = probed
                idx = FileIndex(
                    identity,
                    st.st_size,
                    st.st_mtime_ns,
                    offset,
                    b"",
                    list(shapes_of(entries)),
                    dict(entries),
                    True,
                    0,
                    pending,
                    verified=False,
                )
            else:
                # Not a trainer's log as far as its tail tells (another writer's lines, or
                # gigabytes of zeros): nothing more is read in the request. The run shows from
                # the walk; the background pass reads the file and its answer replaces this.
                idx = FileIndex(identity, st.st_size, st.st_mtime_ns, st.st_size, findable=False)
                idx.verified = False
                entries = {}
            idx.probed = set(targets)
            self._verifier.queue(key, root, targets)
            return self._keep(key, idx, f, root), entries
        idx, entries = full_index(f, st)
        if idx.skipped:
            # Once per version of the file: the index is kept, so later requests stay quiet.
            log.warning("%s: skipped %d malformed line(s)", key, idx.skipped)
        return self._keep(key, idx, f, root), entries

    def _keep(self, key: str, idx: FileIndex, f: BinaryIO, root: Path) -> FileIndex:
        start = max(idx.offset - FINGERPRINT, 0)
        idx.fingerprint = _read_at(f, start, idx.offset - start)
        self._indexes[key] = idx
        self._save(key, idx, root)  # queued: a later save of the same file replaces it
        return idx

    def install(
        self, key: str, root: Path, fields: tuple[Any, ...], correcting: bool = True
    ) -> bool:
        """Put a background pass's index in place of a first answer, if the file is still the
        one it read (a file that has grown since grows on from it). Not `correcting`: the
        file had no index before (a command's read ahead), so no earlier answer changes."""
        verified = FileIndex.from_fields(fields)
        if verified is None:
            return False
        with self._lock:
            current = self._indexes.get(key)
            if current is not None and current.verified:
                return False  # read in full meanwhile
            if current is not None and current.identity != verified.identity:
                return False  # replaced meanwhile: its own pass is queued
            if verified.skipped:
                log.warning("%s: skipped %d malformed line(s)", key, verified.skipped)
            self._indexes[key] = verified
            self._full.pop(key, None)
            self._save(key, verified, root)
            if correcting:
                self._versions[key] = self._versions.get(key, 0) + 1
            return True

    def read_ahead(self, logs: Sequence[tuple[Path, Path, Sequence[int]]]) -> None:
        """A command about to read many logs, as (path, root, target steps): those with no
        index yet are read in full by this process and the background-check process at once,
        where there are two cores (the pass is all parsing, one core each)."""
        if self.background or (os.cpu_count() or 1) < 2:
            return
        with self._lock:
            todo = [
                (str(p), root, tuple(t)) for p, root, t in logs if not self._known(str(p), root)
            ]
        if len(todo) < 2:
            return
        answers: list[tuple[str, Path, tuple[Any, ...] | None]] = []

        def theirs() -> None:
            # `check` reads here instead should the second process fail.
            for key, root, targets in todo[1::2]:
                answers.append((key, root, self._verifier.check(key, root, targets)))

        helper = threading.Thread(target=theirs, daemon=True)
        helper.start()
        for key, root, targets in todo[0::2]:
            fields = verify_file(key, str(root), targets)
            if fields is not None:
                self.install(key, root, fields, correcting=False)
        helper.join()
        for key, root, fields in answers:
            if fields is not None:
                self.install(key, root, fields, correcting=False)

    def _known(self, key: str, root: Path) -> bool:
        store = self._store(root)
        return key in self._indexes or (store is not None and store.has(key))

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
            old.verified,
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

    def _open_all(
        self, paths: Sequence[Path], root: Path, stack: ExitStack, targets: Sequence[int] = ()
    ) -> list[_Open]:
        store = self._store(root)
        if store is not None:
            store.touch()
        opened = []
        for p in paths:
            f = open_in(p, root)
            if f is None:
                continue
            stack.enter_context(f)
            try:
                idx, all_entries = self._index(str(p), f, root, targets)
            except OSError:
                continue
            opened.append(_Open(str(p), p, f, idx, all_entries))
        return opened

    def summary(self, paths: Sequence[Path], root: Path, targets: Iterable[int]) -> list[Source]:
        """Each file's metric steps, with the entries that answer "latest value at or before"
        each target step and the file's last step."""
        targets = sorted(set(targets))
        with self._lock, ExitStack() as stack:
            sources = []
            for o in self._open_all(paths, root, stack, targets):
                if not o.idx.verified:
                    self._probe_more(o, targets, root)
                idx = o.idx
                entries = self._entries_at(o, idx.wanted(o.path, targets), root)
                sources.append(idx.source(o.path, entries))
            return sources

    def _probe_more(self, o: _Open, targets: Sequence[int], root: Path) -> None:
        """A first answer asked about steps it was not read for: read their windows too."""
        idx = o.idx
        if idx.probed is None:
            idx.probed = set()
        todo = [t for t in targets if t not in idx.probed]
        if not todo:
            return
        found = probe_steps(o.f, idx.offset, todo)
        idx.probed.update(todo)
        if found:
            merged = dict(idx.entries)
            for step, values in found.items():
                merged[step] = {**merged.get(step, {}), **values}
            idx.entries = merged
            idx.shapes = list(shapes_of(merged))
            self._save(o.key, idx, root)

    def _entries_at(self, o: _Open, wanted: set[int], root: Path) -> dict[int, Entry]:
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
            self._save(o.key, idx, root)
        return found

    def full(self, paths: Sequence[Path], root: Path) -> list[Source]:
        """Every entry of each file."""
        with self._lock, ExitStack() as stack:
            sources = []
            for o in self._open_all(paths, root, stack):
                entries = self._all_entries(o, root)
                sources.append(o.idx.source(o.path, entries))
            return sources

    def _all_entries(self, o: _Open, root: Path) -> dict[int, Entry]:
        idx = o.idx
        if not idx.findable:
            return idx.entries
        if not idx.verified:
            # A chart reads every line anyway: that read is the background pass's answer too.
            verified, entries = full_index(o.f, os.fstat(o.f.fileno()))
            self._keep(o.key, verified, o.f, root)
            self._versions[o.key] = self._versions.get(o.key, 0) + 1
            o.idx = verified
            if not verified.findable:
                return verified.entries
            o.all_entries = entries
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


def full_index(f: BinaryIO, st: os.stat_result) -> tuple[FileIndex, dict[int, Entry]]:
    """An exact index of the whole file, and every entry it read."""
    found, offset, pending = scan(f, 0, st.st_size)
    key = stat_key(st)
    idx = FileIndex(
        (key[0], key[1]),
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
    return idx, found.entries


def verify_file(path: str, root: str, targets: Sequence[int] = ()) -> tuple[Any, ...] | None:
    """One log read in full (the background pass, or a command's read split over two
    processes): its exact index's fields, holding the entries that answer `targets`."""
    f = open_in(Path(path), Path(root))
    if f is None:
        return None
    with f:
        try:
            st = os.fstat(f.fileno())
            idx, entries = full_index(f, st)
            start = max(idx.offset - FINGERPRINT, 0)
            idx.fingerprint = _read_at(f, start, idx.offset - start)
        except OSError:
            return None
    if idx.findable:
        # Kept with the index, the checkpoint table needs no search of the file afterwards.
        idx.entries = {s: entries[s] for s in idx.wanted(Path(path), targets) if s in entries}
    return idx.fields()


class Verifier:
    """Reads first-answered logs in full, one at a time, off the request path."""

    def __init__(self, indexer: LogIndexer) -> None:
        self._indexer = indexer
        self._queue: OrderedDict[str, tuple[Path, tuple[int, ...]]] = OrderedDict()
        self._busy = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._worker: Any = None
        self.hold: set[str] | None = None  # collect what would be queued, check nothing

    def queue(self, key: str, root: Path, targets: Sequence[int] = ()) -> None:
        with self._cond:
            if self.hold is not None:
                self.hold.add(key)
                return
            self._queue[key] = (root, tuple(targets))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + self._busy

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def check(self, key: str, root: Path, targets: Sequence[int]) -> tuple[Any, ...] | None:
        """`verify_file` in the second process, where there are cores for one."""
        if (os.cpu_count() or 1) < 2:
            return verify_file(key, str(root), targets)  # no second core: this thread does it
        if self._worker is None:
            from .verify import Worker

            self._worker = Worker()
        try:
            return self._worker.check(key, str(root), list(targets))
        except OSError:
            return verify_file(key, str(root), targets)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                key, (root, targets) = self._queue.popitem(last=False)
                self._busy += 1
            try:
                fields = self.check(key, root, targets)
                if fields is not None:
                    self._indexer.install(key, root, fields)
            except Exception:  # one unreadable log must not stop the others
                log.exception("background check of %s failed", key)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()


TAIL = 8 << 10
WINDOW = 2 << 10
# A trainer-shaped line starts with its step, as json.dumps writes it by default or compact
# (`separators=(",", ":")`).
STEP_AT_START = rb'\{"step": ?(\d{1,18}), ?'
LINE_STEP = re.compile(rb"\n" + STEP_AT_START)
FIRST_STEP = re.compile(STEP_AT_START)


def step_prefixes(step: int) -> tuple[bytes, bytes]:
    """How a line of `step` starts, as `STEP_AT_START` finds it."""
    return (b'{"step": %d, ' % step, b'{"step":%d,' % step)


def _lines_with_steps(data: bytes, base: int, at_start: bool) -> list[tuple[int, int]]:
    """(offset, step) of the trainer-shaped lines starting in `data` (read from offset `base`);
    the first line counts only when `data` starts at a line start. A literal-prefix search:
    the one step of this module that looks at many bytes."""
    after = base + 1  # a match starts at the newline before its line
    found = [(after + m.start(), int(m[1])) for m in LINE_STEP.finditer(data)]
    if at_start and (m := FIRST_STEP.match(data)):
        found.insert(0, (base, int(m[1])))
    return found


def _first_line_with_step(data: bytes) -> tuple[int, int] | None:
    """The first of `_lines_with_steps(data, 0, True)`, without finding the others."""
    if m := FIRST_STEP.match(data):
        return 0, int(m[1])
    if m := LINE_STEP.search(data):
        return m.start() + 1, int(m[1])
    return None


def _complete_lines(data: bytes, base: int, lines: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Those of `lines` that end within `data`: all but possibly the last."""
    if lines and data.find(b"\n", lines[-1][0] - base) < 0:
        return lines[:-1]
    return lines


def _parse_group(data: bytes, base: int, lines: list[tuple[int, int]], i: int) -> Entry | None:
    """Merge the lines of one step, starting with `lines[i]`, within `data`."""
    step = lines[i][1]
    merged: Entry | None = None
    while i < len(lines) and lines[i][1] == step:
        start = lines[i][0] - base
        end = data.find(b"\n", start)
        if end < 0:
            break
        parsed = parse_line(data[start:end])
        if parsed is not None and parsed[0] == step:
            merged = parsed[1] if merged is None else {**merged, **parsed[1]}
        i += 1
    return merged


def probe(
    f: BinaryIO, size: int, targets: Sequence[int]
) -> tuple[dict[int, Entry], int, bool] | None:
    """A first answer from the file's end and a window around each target step: (entries at
    the steps read, offset of the last complete line's end, a torn tail pending). None when
    what was read does not look like a trainer's log (then it is read in full)."""
    fd = f.fileno()
    start = max(0, size - TAIL)
    data = os.pread(fd, size - start, start)
    lines = _lines_with_steps(data, start, start == 0)
    end = data.rfind(b"\n") + 1
    tail = data[end:]
    pending = False
    offset = start + end
    if tail.strip():
        if parse_line(tail) is not None:
            data += b"\n"
            offset = size
        else:
            pending = True
    complete = [(o, s) for o, s in lines if o < offset]
    if not complete:
        return None if size > 0 and (offset > 0 or not pending) else ({}, offset, pending)
    steps = [s for _, s in complete]
    if steps != sorted(steps):
        return None  # steps go back: only a full read answers
    entries: dict[int, Entry] = {}
    last = complete[-1][1]
    first_of_last = _group_first(complete, len(complete) - 1)  # in order: its lines end the list
    group = _parse_group(data, start, complete, first_of_last)
    if group is None:
        return None
    entries[last] = group
    last_line = complete[first_of_last]
    entries |= probe_steps(f, offset, [t for t in targets if t < last], last_line)
    return entries, offset, pending


def probe_steps(
    f: BinaryIO, end: int, targets: Sequence[int], last: tuple[int, int] | None = None
) -> dict[int, Entry]:
    """Entries at the logged step nearest at or before each target, found by interpolating
    between known line positions and reading a window there."""
    fd = f.fileno()
    known = _first_line_with_step(os.pread(fd, min(WINDOW, end), 0))
    if known is None:
        return {}
    lo_off, lo_step = known
    hi_off, hi_step = end, None
    if last is not None:
        hi_off, hi_step = last  # the file's last line, from its tail: interpolation's far end
    found: dict[int, Entry] = {}
    for target in sorted(targets):
        if target < lo_step:
            continue
        if hi_step is not None and target >= hi_step:
            continue  # answered by the tail
        hit = _window_at(fd, end, target, lo_off, lo_step, hi_off, hi_step)
        if hit is None:
            continue
        step, entry, line_off = hit
        found[step] = entry
        lo_off, lo_step = line_off, step  # targets ascend: later searches start here
    return found


def _window_at(
    fd: int,
    end: int,
    target: int,
    lo: int,
    lo_step: int,
    hi: int,
    hi_step: int | None,
) -> tuple[int, Entry, int] | None:
    """(step, merged entry, its first line's offset) of the nearest logged step at or before
    `target`. `lo` is a line start whose step (`lo_step`) is at or before `target`; the first
    line at or after `hi` is past it (`hi_step`, when known), or `hi` is the end."""
    for _ in range(24):
        if hi - lo <= 2 * WINDOW:
            return _resolve_range(fd, lo, min(end, hi + WINDOW), target)
        if hi_step is not None and hi_step > lo_step:
            # Lines are about the same length: the step is about where its share of bytes is.
            est = lo + int((target + 1 - lo_step) / (hi_step - lo_step) * (hi - lo))
        else:
            est = (lo + hi) // 2
        pos = max(lo + 1, min(est - WINDOW // 2, hi - WINDOW))
        data = os.pread(fd, WINDOW, pos)
        own = _own_group(data, pos, target)
        if own is not None:
            return own
        lines = _complete_lines(data, pos, _lines_with_steps(data, pos, False))
        if not lines:
            return _resolve_range(fd, lo, hi, target) if hi - lo <= 16 * WINDOW else None
        if lines[0][1] > target:
            hi, hi_step = lines[0]
        elif lines[-1][1] <= target:
            lo, lo_step = lines[_group_first(lines, len(lines) - 1)]
        else:
            k = _last_at_or_before(lines, target)  # not the last line, which is past it
            g = _group_first(lines, k)
            if g:
                # The step's lines all lie in this window: the answer is here.
                entry = _parse_group(data, pos, lines, g)
                return (lines[g][1], entry, lines[g][0]) if entry is not None else None
            hi, hi_step = lines[k + 1]
            first = lines[0][0]
            lo = max(lo, first - WINDOW)  # the step's first lines may precede the window
            lo = _line_start_before(fd, lo, first)
    return None


def _own_group(data: bytes, base: int, step: int) -> tuple[int, Entry, int] | None:
    """`_window_at`'s answer when `step` itself was logged within `data` (read from offset
    `base`): its lines, found by their prefix, merged, when a line of another step comes just
    before them and one after, as `_window_at` would find them, without listing every line of
    the window (most checkpoints are saved at a logged step). Else None."""
    prefixes = step_prefixes(step)
    at = data.find(b"\n" + prefixes[0])
    if at < 0:
        at = data.find(b"\n" + prefixes[1])
        if at < 0:
            return None
    # The line before must be another step's, whole within the window: this is the first.
    before = FIRST_STEP.match(data, data.rfind(b"\n", 0, at) + 1)
    if before is None or (before.start() == 0 and base > 0) or int(before[1]) == step:
        return None
    start = pos = at + 1
    merged: Entry | None = None
    while data.startswith(prefixes, pos):
        end = data.find(b"\n", pos)
        if end < 0:
            return None  # runs past the window
        parsed = parse_line(data[pos:end])
        if parsed is not None and parsed[0] == step:
            merged = parsed[1] if merged is None else {**merged, **parsed[1]}
        pos = end + 1
    # And the line after must be another step's: the group ends here.
    after = FIRST_STEP.match(data, pos)
    if merged is None or after is None or int(after[1]) == step:
        return None
    return step, merged, base + start


def _group_first(lines: list[tuple[int, int]], k: int) -> int:
    """The index of the first of the consecutive lines sharing `lines[k]`'s step."""
    step = lines[k][1]
    while k > 0 and lines[k - 1][1] == step:
        k -= 1
    return k


def _last_at_or_before(lines: list[tuple[int, int]], target: int) -> int:
    """The index of the last line whose step is at or before `target`, else -1 (a search from
    the end: lines need not be in step order)."""
    k = len(lines) - 1
    while k >= 0 and lines[k][1] > target:
        k -= 1
    return k


def _line_start_before(fd: int, pos: int, limit: int) -> int:
    """The first line start at or after `pos` (before `limit`), else `limit`."""
    if pos == 0:
        return 0
    data = os.pread(fd, limit - pos, pos - 1)
    nl = data.find(b"\n")
    return pos + nl if 0 <= nl < limit - pos else limit


def _resolve_range(fd: int, a: int, b: int, target: int) -> tuple[int, Entry, int] | None:
    """Within [a, b), `a` a line start: the nearest step at or before `target`, merged."""
    data = os.pread(fd, b - a, a)
    lines = _complete_lines(data, a, _lines_with_steps(data, a, True))
    k = _last_at_or_before(lines, target)
    if k < 0:
        return None
    i = _group_first(lines, k)
    entry = _parse_group(data, a, lines, i)
    return (lines[i][1], entry, lines[i][0]) if entry is not None else None


MAX_TARGET = 2**63 - 1  # "at or before the end": each file's last values
SEARCH_WINDOW = 64 << 10
STEP_PREFIX = FIRST_STEP


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
    prefix = step_prefixes(step)
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
caches.register(__name__, indexer.clear, "indexer")


def read_summary(
    run_dir: Path, root: Path, targets: Iterable[int] = (), top_log: bool | None = None
) -> History:
    """The run's logs, with every metric's latest value at each target step answerable
    (`top_log`: whether the run folder lists a LLaMA-Factory log, when known)."""
    files = log_files(run_dir, root, top_log)
    return History(tuple(indexer.summary(files, root, targets)), False, tuple(files))


# A running run's pace needs its log's last few hundred lines, not the log (a long run's is
# hundreds of MB): this much of the newest log's end holds them.
LAST_LINES_BYTES = 64 << 10


def last_entries(run_dir: Path, root: Path) -> dict[int, Entry]:
    """The entries of the last whole lines of a run's newest log (its last LAST_LINES_BYTES),
    merged per step as a history merges them; {} when it has none that parse."""
    files = log_files(run_dir, root)
    f = open_in(files[-1], root) if files else None
    if f is None:
        return {}
    with f:
        try:
            size = os.fstat(f.fileno()).st_size
            start = max(0, size - LAST_LINES_BYTES)
            data = os.pread(f.fileno(), size - start, start)
        except OSError:
            return {}
    lines = data.split(b"\n")
    # The first line may start before what was read, the last may be still being written.
    whole = lines[1 if start else 0 : -1]
    entries: dict[int, Entry] = {}
    for raw in whole:
        if (parsed := parse_line(raw)) is not None:
            merge_into(entries, *parsed)
    return entries


def read_history(run_dir: Path, root: Path) -> History:
    """Every entry of a run's logs, for charts."""
    files = log_files(run_dir, root)
    return History(tuple(indexer.full(files, root)), True, tuple(files))
