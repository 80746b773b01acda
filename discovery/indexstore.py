"""Log indexes on disk, so a restart or a second command does not read the logs again.

One SQLite file per workspace (WAL mode, the standard library's sqlite3), read in one query at
start; a background thread writes what changed in one transaction once requests go quiet,
and `flush()` (also run when the process exits) writes the rest. A killed process leaves
either the old or the new rows, never a torn one: SQLite's transactions see to that. A file
that is not such a store, or from another version, is set aside and started afresh.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import marshal
import os
import sqlite3
import threading
import time
import weakref
from pathlib import Path
from typing import Any

FORMAT = 3
IDLE_BEFORE_WRITE = 0.5
# Rows queued before they are written at once, quiet or not: a first pass over a thousand runs
# would otherwise hold every row (and its encoding, at exit) in memory together.
MAX_QUEUED = 256
log = logging.getLogger(__name__)


def encode(fields: tuple[Any, ...]) -> bytes:
    return marshal.dumps(fields)


def decode(data: bytes) -> tuple[Any, ...] | None:
    """The fields `encode` was given, or None for bytes that are not such fields."""
    try:
        value = marshal.loads(data)
    except (EOFError, ValueError, TypeError):
        return None
    return value if isinstance(value, tuple) else None


def store_file(folder: Path, workspace: Path) -> Path:
    """The store of one workspace in the dashboard's index folder."""
    digest = hashlib.sha1(str(workspace).encode()).hexdigest()[:16]
    return folder / f"index-{digest}.sqlite3"


class IndexStore:
    """Indexes by log path, in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._rows: dict[str, bytes] | None = None  # what the file held at start, by key
        self._dirty: dict[str, tuple[Any, ...]] = {}
        self._wake = threading.Condition()
        self._writer: threading.Thread | None = None
        self._write_lock = threading.Lock()  # one write at a time, pending taken inside it
        self.last_use = 0.0  # when the indexer last worked; writes wait for quiet
        _stores.add(self)

    @property
    def folder(self) -> Path:
        return self.path.parent

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, FORMAT):
                conn.execute("DROP TABLE IF EXISTS files")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS files (key TEXT PRIMARY KEY, data BLOB NOT NULL)"
            )
            conn.execute(f"PRAGMA user_version={FORMAT}")
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    def _open(self) -> sqlite3.Connection | None:
        try:
            return self._connect()
        except sqlite3.DatabaseError:
            # Not a store of ours (or damaged beyond SQLite's own recovery): start afresh.
            log.warning("%s is not a readable index store; starting a new one", self.path)
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    os.replace(f"{self.path}{suffix}", f"{self.path}{suffix}.bad")
            try:
                return self._connect()
            except (sqlite3.DatabaseError, OSError):
                return None
        except OSError:
            return None

    def _all(self) -> dict[str, bytes]:
        if self._rows is None:
            rows: dict[str, bytes] = {}
            conn = self._open()
            if conn is not None:
                try:
                    rows = dict(conn.execute("SELECT key, data FROM files"))
                except sqlite3.DatabaseError:
                    rows = {}
                finally:
                    conn.close()
            self._rows = rows
        return self._rows

    def touch(self) -> None:
        """The indexer is working: writes wait until it has been quiet for a moment."""
        self.last_use = time.monotonic()

    def has(self, key: str) -> bool:
        return key in self._all()

    def peek(self, key: str) -> tuple[Any, ...] | None:
        """What `load` would return, left in place for it."""
        data = self._all().get(key)
        return decode(data) if data is not None else None

    def load(self, key: str) -> tuple[Any, ...] | None:
        data = self._all().pop(key, None)  # decoded once: the indexer keeps it from here
        return decode(data) if data is not None else None

    def save(self, key: str, fields: tuple[Any, ...]) -> None:
        """Queue a write; a later save of the same key replaces a queued one."""
        with self._wake:
            first = not self._dirty
            self._dirty[key] = fields
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_loop, daemon=True)
                self._writer.start()
            # Only the first waits for work; after it the writer sleeps out the quiet period
            # by itself, and waking it on every save would cost a thread switch each.
            if first:
                self._wake.notify()
            full = len(self._dirty) >= MAX_QUEUED
        if full:
            self.flush()

    def flush(self) -> None:
        """Write every queued index now, after a write the background thread has begun."""
        with self._write_lock:
            with self._wake:
                pending, self._dirty = self._dirty, {}
            self._write(pending)

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
            # Taken with the write lock held, so a flush() waits for this write to end.
            with self._write_lock:
                with self._wake:
                    pending, self._dirty = self._dirty, {}
                self._write(pending)

    def _write(self, pending: dict[str, tuple[Any, ...]]) -> None:
        if not pending:
            return
        rows = [(key, encode(fields)) for key, fields in pending.items()]
        conn = self._open()
        if conn is None:
            return  # a read-only data folder costs speed after a restart, nothing else
        try:
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany("INSERT OR REPLACE INTO files VALUES (?, ?)", rows)
        except sqlite3.DatabaseError as exc:
            log.warning("could not write the index store %s: %s", self.path, exc)
        finally:
            conn.close()


_stores: weakref.WeakSet[IndexStore] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    # Every process keeps what it learned: a command's index outlives it.
    for store in list(_stores):
        store.flush()
