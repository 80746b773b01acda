"""Confinement to the workspace root, and reads cached by file identity."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson

from .values import MAX_DEPTH, too_deep

T = TypeVar("T")

# Names that a URL may carry into a path: no separators, no dot-only names, no NUL, text
# (a folder name that is not UTF-8 cannot be a URL), and short enough for any filesystem.
# Discovery lists only such names, so every listed name opens; pages draw them `visible`.
MAX_NAME_LENGTH = 255
SEPARATORS = frozenset({"/", "\x00", os.sep, os.altsep or "/"})


def is_safe_name(name: str) -> bool:
    return (
        0 < len(name) <= MAX_NAME_LENGTH
        and name not in {".", ".."}
        and not any(c in SEPARATORS for c in name)
        and _is_text(name)
    )


def _is_text(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes, kept by os.fsdecode as lone surrogates
        return False
    return True


def realpath(path: Path | str) -> Path:
    return Path(os.path.realpath(path))


def is_inside(path: Path | str, root: Path) -> bool:
    """True when `path`, with every symlink resolved, is `root` or below it."""
    real = os.path.realpath(path)
    root_s = str(root)
    return real == root_s or real.startswith(root_s.rstrip(os.sep) + os.sep)


def stat_key(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class StatCache:
    """Values derived from a file, recomputed only when its inode, size or mtime change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], tuple[tuple[int, int, int, int], Any]] = {}

    def get(self, path: Path, kind: str, load: Callable[[bytes], T]) -> T | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = (str(path), kind)
        sig = stat_key(st)
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and hit[0] == sig:
            return hit[1]
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return None
        value = load(data)
        with self._lock:
            self._entries[key] = (sig, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


file_cache = StatCache()


def loads_lenient(data: bytes) -> Any:
    """orjson, falling back to json for the NaN and Infinity tokens Python writes (and integers
    beyond 64 bits); None for what does not parse or nests deeper than anything writes."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        import json

        try:
            value = json.loads(data.decode("utf-8"))
        except (ValueError, RecursionError):
            return None
    # Fewer brackets than the depth limit cannot nest past it: most lines skip the walk.
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH and too_deep(value):
        return None
    return value


def read_json_object(path: Path, kind: str = "json") -> dict[str, Any] | None:
    """A JSON file's top-level object, or None when missing, unreadable or not an object."""

    def load(data: bytes) -> dict[str, Any] | None:
        value = loads_lenient(data)
        return value if isinstance(value, dict) else None

    return file_cache.get(path, kind, load)
