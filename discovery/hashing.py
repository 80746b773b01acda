"""The sha256 of large files (a run's GGUF files): one background thread reads them, results are
remembered by file identity (device, inode, size, mtime) in memory and in the dashboard's data
folder. A request only ever looks a digest up; a file not known yet is queued, never read.

With a store on disk, one process on the machine hashes at a time (a lock file beside the
store): the others wait, then find the digest in the store instead of reading the file again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # Windows: every process hashes for itself
    fcntl = None  # type: ignore[assignment]

import orjson

from . import caches
from .paths import is_inside, open_in, stat_key

Key = tuple[int, int, int, int]
CHUNK = 1 << 20
DROP_EVERY = 64 << 20
NICENESS = 10
# A file written this recently may still be being written: it waits before being read.
SETTLE_S = 2.0
FORMAT = 1
MAX_REMEMBERED = 20_000
# How often a process waiting for another's hashing looks again.
LOCK_RETRY_S = 0.5


def _open(path: str, root: Path | None) -> BinaryIO | None:
    """The file to hash: through `open_in` inside a root (a name swapped for a link out since
    the check is refused where it is opened); else opened non-blocking, so a FIFO put in its
    place does not wait for a writer."""
    if root is not None:
        return open_in(path, root)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    return os.fdopen(fd, "rb", buffering=0)


class Hasher:
    def __init__(self, store: Path | None = None, settle_s: float = SETTLE_S) -> None:
        self._cond = threading.Condition()
        self._known: dict[Key, str] = {}
        # path → (monotonic time it may be read from, the folder it must stay inside)
        self._queue: dict[str, tuple[float, Path | None]] = {}
        self._current: str | None = None
        self._thread: threading.Thread | None = None
        self._store = store
        self._loaded = False
        self._store_key: tuple[int, int, int] | None = None
        self.settle_s = settle_s

    def configure(self, store: Path | None, settle_s: float = SETTLE_S) -> None:
        with self._cond:
            self._store, self._loaded, self.settle_s = store, False, settle_s
            self._store_key = None
            self._known.clear()
            self._queue.clear()

    def clear(self) -> None:
        """Forget the digests known in memory (the store on disk keeps its own)."""
        with self._cond:
            self._known.clear()
            self._loaded = False
            self._store_key = None

    def digest(self, path: Path, root: Path | None = None) -> str | None:
        """The file's sha256 if known for what it holds now; else None, and the file is queued.

        With `root`, the file is read only while it still resolves inside that folder.
        """
        try:
            st = os.stat(path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        self._load()
        with self._cond:
            hit = self._known.get(stat_key(st))
            if hit is not None:
                return hit
            name = str(path)
            if name != self._current and name not in self._queue:
                self._queue[name] = (time.monotonic(), root)
                self._cond.notify()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="sha256", daemon=True)
                self._thread.start()
        return None

    @property
    def current(self) -> str | None:
        """The file being read right now, if any."""
        return self._current

    def idle(self) -> bool:
        with self._cond:
            return not self._queue and self._current is None

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.idle():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def _next(self) -> tuple[str, Path | None] | None:
        with self._cond:
            while self._queue:
                path, (when, root) = min(self._queue.items(), key=lambda item: item[1][0])
                wait = when - time.monotonic()
                if wait <= 0:
                    del self._queue[path]
                    self._current = path
                    return path, root
                self._cond.wait(wait)
            self._thread = None
            return None

    def _work(self) -> None:
        # Below the threads answering requests, on Linux where a thread has its own niceness.
        if sys.platform == "linux":
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)
        while (item := self._next()) is not None:
            try:
                self._hash(*item)
            finally:
                with self._cond:
                    self._current = None

    def _later(self, path: str, root: Path | None, delay: float) -> None:
        with self._cond:
            self._queue[path] = (time.monotonic() + max(delay, 0.05), root)

    def _hash(self, path: str, root: Path | None) -> None:
        if root is not None and not is_inside(path, root):
            return  # replaced by a link out since it was listed
        try:
            st = os.stat(path)
        except OSError:
            return  # gone
        key = stat_key(st)
        if not stat.S_ISREG(st.st_mode) or key in self._known:
            return
        age = time.time() - st.st_mtime
        if age < self.settle_s:
            self._later(path, root, self.settle_s - age)
            return
        f = _open(path, root)
        if f is None:
            return
        with f, self._machine_lock() as held:
            if not held:
                self._later(path, root, LOCK_RETRY_S)  # another process is hashing
                return
            self._reload()  # it may have hashed this very file meanwhile
            if key in self._known:
                return
            self._read(f, path, root, st, key)

    def _read(
        self, f: BinaryIO, path: str, root: Path | None, st: os.stat_result, key: Key
    ) -> None:
        fd = f.fileno()
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            return
        if stat_key(opened) != key:
            self._later(path, root, self.settle_s)
            return
        sha, total = hashlib.sha256(), 0
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        _advise(fd, 0, 0, "POSIX_FADV_SEQUENTIAL")
        try:
            # Both calls release the GIL for a whole chunk: requests keep being answered.
            # (Read from the descriptor itself: nothing else reads this file object.)
            while n := os.readv(fd, [buf]):
                sha.update(view[:n])
                total += n
                if total % DROP_EVERY < n:
                    # Read once: gigabytes of it need not push what pages use out of memory.
                    _advise(fd, total - DROP_EVERY, DROP_EVERY, "POSIX_FADV_DONTNEED")
        except OSError:
            return
        finished = os.fstat(fd)
        try:
            unchanged = stat_key(os.stat(path)) == key
        except OSError:
            return
        if total != st.st_size or stat_key(finished) != key or not unchanged:
            # Written to while it was read: read it again once quiet.
            self._later(path, root, self.settle_s)
            return
        with self._cond:
            self._known[key] = sha.hexdigest()
        self._save()

    @contextlib.contextmanager
    def _machine_lock(self) -> Iterator[bool]:
        """Whether this process may hash now: no other process holds the lock beside the
        store. Without a store (or on Windows), always."""
        with self._cond:
            store = self._store
        if store is None or fcntl is None:
            yield True
            return
        try:
            store.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(store.with_name(f"{store.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            yield True  # a read-only data folder: hash without it, as before
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                yield False
                return
            yield True  # closing the descriptor releases it, as does this process ending
        finally:
            os.close(fd)

    def _load(self) -> None:
        if self._loaded:
            return
        with self._cond:
            self._loaded = True
        self._reload()

    def _reload(self) -> None:
        """What the store on disk holds (another process may have written it), merged in."""
        with self._cond:
            store = self._store
        if store is None:
            return
        try:
            st = store.stat()
            seen = (st.st_ino, st.st_size, st.st_mtime_ns)
            if seen == self._store_key:
                return
            data = orjson.loads(store.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return
        found: dict[Key, str] = {}
        for text, digest in (data.get("sha256") or {}).items():
            parts = text.split(":") if isinstance(text, str) else []
            if len(parts) == 4 and all(p.isdigit() for p in parts) and _is_hex(digest):
                found[(int(parts[0]), int(parts[1]), int(parts[2]), int(parts[3]))] = digest
        with self._cond:
            self._known = {**found, **self._known}
            self._store_key = seen

    def _save(self) -> None:
        self._reload()  # keep what other processes wrote
        with self._cond:
            store = self._store
            known = list(self._known.items())[-MAX_REMEMBERED:]
        if store is None:
            return
        data = {"format": FORMAT, "sha256": {":".join(map(str, k)): v for k, v in known}}
        try:
            store.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = store.with_name(f".{store.name}.{os.getpid()}.tmp")
            tmp.write_bytes(orjson.dumps(data))
            os.replace(tmp, store)
        except OSError:
            pass  # a read-only data folder costs a re-hash after a restart, nothing else


def _advise(fd: int, offset: int, length: int, advice: str) -> None:
    if hasattr(os, "posix_fadvise") and hasattr(os, advice):
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, max(offset, 0), length, getattr(os, advice))


def _is_hex(value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) is not None


hasher = Hasher()
caches.register(__name__, hasher.clear, "hasher")
