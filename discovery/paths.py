"""Confinement to the workspace root, and reads cached by file identity."""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Literal, NamedTuple, TypeVar

import orjson

from . import caches
from .values import MAX_DEPTH, too_deep

T = TypeVar("T")

# Names that a URL may carry into a path: no separators, no dot-only names, no NUL, text
# (a folder name that is not UTF-8 cannot be a URL), and short enough for any filesystem.
# Discovery lists only such names, so every listed name opens; pages draw them `visible`.
MAX_NAME_LENGTH = 255
SEPARATORS = frozenset({"/", "\x00", os.sep, os.altsep or "/"})


def is_safe_name(name: str) -> bool:
    # Every entry of every folder a walk lists passes here: substring searches and an ASCII
    # check in C, not a loop over the name's characters in Python.
    return (
        0 < len(name) <= MAX_NAME_LENGTH
        and name not in {".", ".."}
        and not any(sep in name for sep in SEPARATORS)
        and (name.isascii() or _is_text(name))
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
    return _inside(os.path.realpath(path), root)


def child_joiner(folder: Path) -> Callable[[str], Path]:
    """`folder / name` for a plain name (no separator), at a third of the cost: pathlib's own
    join of one part, which `/` reaches only after parsing the name as a path. `/` where a
    Python lacks it."""
    return getattr(folder, "_make_child_relpath", folder.joinpath)


def link_leaves(path: Path | str, root: Path) -> bool:
    """True when `path` is a symlink whose target is outside `root`."""
    return os.path.islink(path) and not is_inside(path, root)


def folder_inside(path: Path | str, root: Path) -> bool:
    """`path` is a folder, or a link to one inside `root`."""
    return os.path.isdir(path) and not link_leaves(path, root)


def entry_inside(entry: os.DirEntry[str], root: Path) -> bool:
    """A scanned entry that is not a link, or a link whose target is inside `root`."""
    return not entry.is_symlink() or is_inside(entry.path, root)


def dir_entry_inside(entry: os.DirEntry[str] | None, root: Path) -> bool:
    """A scanned folder (or a link to one inside `root`), from the scan's own data."""
    try:
        return entry is not None and entry.is_dir() and entry_inside(entry, root)
    except OSError:
        return False


class Scan(NamedTuple):
    entries: list[os.DirEntry[str]]
    linked: bool  # some matching entry is a link: its target can change unseen


def scan(
    folder: Path | str,
    root: Path,
    kind: Literal["dir", "file"] | None = None,
    match: Callable[[str], object] | None = None,
) -> Scan:
    """The entries of `folder` whose names are safe (and `match`), of `kind` when given (links
    followed), leaving out links out of `root`. The one listing of a workspace folder."""
    try:
        with os.scandir(folder) as it:
            found = list(it)
    except OSError:
        return Scan([], False)
    kept = []
    linked = False
    for e in found:
        # What is_safe_name asks, less what a listing never holds (empty, dot-only, too long
        # for the filesystem, with a separator or NUL): that the name is text. Every entry of
        # every run's folders passes here on a walk.
        name = e.name
        if (match is not None and not match(name)) or not (name.isascii() or _is_text(name)):
            continue  # a name no URL can open is not listed
        try:
            if e.is_symlink():
                linked = True
                if not is_inside(e.path, root):
                    continue
            if kind == "dir" and not e.is_dir():
                continue
            if kind == "file" and not e.is_file():
                continue
        except OSError:
            continue
        kept.append(e)
    return Scan(kept, linked)


# What says a file changed: (device, inode), which say it was not replaced, then size and
# mtime in ns, which say it was not written. The one key every cache of a file compares; a
# plain tuple, as it is built for several files of every run on every walk.
FileKey = tuple[int, int, int, int]


def stat_key(st: os.stat_result) -> FileKey:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def file_key(path: Path | str | None) -> FileKey | None:
    """`path`'s key (links followed), or None when it is missing."""
    if path is None:
        return None
    try:
        return stat_key(os.stat(path))
    except OSError:
        return None


# Metadata files (trainer_state.json with a long history, lineage, adapter config, reports)
# are read whole; a bigger one is not metadata and is left unread.
MAX_FILE_BYTES = 64 * 2**20
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)


# Linux names an open file's real path here: one readlink, where realpath stats every component.
_PROC_FD = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else None


def open_in(path: Path | str, root: Path) -> BinaryIO | None:
    """`path` opened for reading when, every link resolved, it is a regular file inside `root`.

    The one way workspace files are opened. Non-blocking, so a FIFO put where a file belongs
    is refused at once instead of waiting for a writer; device files are refused too.
    """
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISREG(st.st_mode) and _PROC_FD is not None:
        # A regular file (opening one has no side effects, unlike a device): open it, then ask
        # where it really is, which also catches a linked folder above it.
        fd = _open(path, os.O_NOFOLLOW)
        if fd is None:
            return None
        try:
            real = os.readlink(f"{_PROC_FD}/{fd}")
        except OSError:
            real = ""
        if not _inside(real, root):
            os.close(fd)
            return None
        return _regular(fd)
    # A link, or not a file at all: resolve it before opening anything.
    real = os.path.realpath(path)
    if not _inside(real, root):
        return None
    fd = _open(real, 0)
    return _regular(fd) if fd is not None else None


def _open(path: Path | str, flags: int) -> int | None:
    try:
        return os.open(path, _OPEN_FLAGS | flags)
    except OSError:
        return None


def _regular(fd: int) -> BinaryIO | None:
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return os.fdopen(fd, "rb")
    except OSError:
        pass
    os.close(fd)
    return None


def _inside(real: str, root: Path) -> bool:
    root_s = str(root)
    return real == root_s or real.startswith(root_s.rstrip(os.sep) + os.sep)


def _read_capped(f: BinaryIO, size: int) -> bytes:
    """The file's bytes up to MAX_FILE_BYTES + 1 (one more tells a file too big), asked for by
    the size fstat gave: a read of the cap itself allocates 64 MB before reading a 1 KB file,
    and costs five times the read. A file grown since fstat is read on up to the cap."""
    want = min(size, MAX_FILE_BYTES) + 1
    data = f.read(want)
    if len(data) == want and want <= MAX_FILE_BYTES:
        data += f.read(MAX_FILE_BYTES + 1 - want)
    return data


class StatCache:
    """Values derived from a file, recomputed only when its inode, size or mtime change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (path, kind) → the file's key and the value, one flat tuple: a first answer keeps
        # two or three a run, and the garbage collector counts each lasting tuple.
        self._entries: dict[tuple[str, str], tuple[int, int, int, int, Any]] = {}

    def get(self, path: Path, root: Path, kind: str, load: Callable[[bytes], T]) -> T | None:
        """`load` of the file's bytes; None when it is not a readable regular file inside
        `root`, or larger than MAX_FILE_BYTES."""
        f = open_in(path, root)
        if f is None:
            return None
        with f:
            try:
                sig = stat_key(os.fstat(f.fileno()))
            except OSError:
                return None
            key = (str(path), kind)
            with self._lock:
                hit = self._entries.get(key)
            if hit is not None and hit[:4] == sig:
                return hit[4]
            try:
                data = _read_capped(f, sig[2])
            except OSError:
                return None
        value = load(data) if len(data) <= MAX_FILE_BYTES else None
        with self._lock:
            self._entries[key] = (*sig, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


file_cache = StatCache()
caches.register(__name__, file_cache.clear, "file_cache")


# A folder changed this recently may change again within the filesystem's clock tick, unseen
# by its mtime (git's "racily clean" entries): its listing is not reused until it settles.
SETTLED_S = 2.0
_listings: dict[tuple[str, str, str], tuple[int, int, int, int, Any]] = {}  # key, listing


def listing(folder: str, root: Path, kind: str, read: Callable[[str], tuple[T, bool]]) -> T | None:
    """`read(folder)` (its result, and whether any entry was a link), reused while the folder's
    FileKey stays: adding, removing or renaming an entry changes them. A listing with
    links is never reused (their targets can change unseen), nor one changed just now. None
    when the folder is missing, or a link that leads out of `root`."""
    # One lstat answers for a folder that is not a link (its stat would be the same); a link
    # is checked, then followed. Three listings a run on every walk.
    try:
        st = os.lstat(folder)
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        if not is_inside(folder, root):
            return None
        try:
            st = os.stat(folder)
        except OSError:
            return None  # a dangling link
    key, sig = (folder, str(root), kind), stat_key(st)
    hit = _listings.get(key)
    if hit is not None and hit[:4] == sig:
        return hit[4]
    result, linked = read(folder)
    if not linked and time.time() - st.st_mtime > SETTLED_S:
        _listings[key] = (*sig, result)  # one flat tuple, as file_cache keeps its entries
    return result


def clear_listings() -> None:
    _listings.clear()


caches.register(__name__, clear_listings, "_listings")


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


def read_json_object(path: Path, root: Path, kind: str = "json") -> dict[str, Any] | None:
    """A JSON file's top-level object, or None when missing, unreadable or not an object."""

    def load(data: bytes) -> dict[str, Any] | None:
        value = loads_lenient(data)
        return value if isinstance(value, dict) else None

    return file_cache.get(path, root, kind, load)
