"""Log indexes on disk, so a restart does not re-read every log: one file per log, written
atomically by a background thread once requests go quiet."""

from __future__ import annotations

import hashlib
import marshal
import os
import threading
import time
from pathlib import Path
from typing import Any

FORMAT = 2
IDLE_BEFORE_WRITE = 0.5


def encode(fields: tuple[Any, ...]) -> bytes:
    return marshal.dumps((FORMAT, *fields))


def decode(data: bytes) -> tuple[Any, ...] | None:
    """The fields `encode` was given, or None for a torn, foreign or older file."""
    try:
        value = marshal.loads(data)
    except (EOFError, ValueError, TypeError):
        return None
    if not isinstance(value, tuple) or not value or value[0] != FORMAT:
        return None
    return value[1:]


class IndexStore:
    """A folder of index files named by a hash of each log's path."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        # Fields, not bytes: encoding waits for the writer thread, off the request's path.
        self._dirty: dict[str, tuple[Any, ...]] = {}
        self._wake = threading.Condition()
        self._writer: threading.Thread | None = None
        self.last_use = 0.0  # when the indexer last worked; writes wait for quiet

    def _path(self, key: str) -> Path:
        return self.folder / (hashlib.sha1(key.encode()).hexdigest() + ".idx")

    def touch(self) -> None:
        """The indexer is working: writes wait until it has been quiet for a moment."""
        self.last_use = time.monotonic()

    def load(self, key: str) -> tuple[Any, ...] | None:
        try:
            return decode(self._path(key).read_bytes())
        except OSError:
            return None

    def save(self, key: str, fields: tuple[Any, ...]) -> None:
        """Queue a write; a later save of the same key replaces a queued one."""
        with self._wake:
            self._dirty[key] = fields
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_loop, daemon=True)
                self._writer.start()
            self._wake.notify()

    def flush(self) -> None:
        """Write every queued index now."""
        with self._wake:
            pending, self._dirty = self._dirty, {}
        for key, fields in pending.items():
            self._write(key, fields)

    def _write_loop(self) -> None:
        while True:
            with self._wake:
                while not self._dirty:
                    self._wake.wait()
                # Let a burst of indexing finish first: writing competes with it for the GIL.
                idle = time.monotonic() - self.last_use
                if idle < IDLE_BEFORE_WRITE:
                    self._wake.wait(IDLE_BEFORE_WRITE - idle)
                    continue
                key, fields = self._dirty.popitem()
            self._write(key, fields)

    def _write(self, key: str, fields: tuple[Any, ...]) -> None:
        p = self._path(key)
        data = encode(fields)
        try:
            p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = p.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, p)
        except OSError:
            pass  # a read-only data folder costs speed after a restart, nothing else
