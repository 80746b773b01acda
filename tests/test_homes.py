"""Rules with one home: each is decided in one module, and these tests keep it so."""

from __future__ import annotations

import ast
import collections
import enum
import importlib
import inspect
import os
import re
from pathlib import Path

from discovery import caches
from discovery.paths import FileKey, file_key, scan

REPO = Path(__file__).resolve().parent.parent
DISCOVERY = REPO / "discovery"


def test_only_paths_asks_whether_something_is_a_link() -> None:
    # "A folder or a link inside the root" is decided by discovery/paths.py's scan and helpers;
    # a module asking is_symlink/islink itself has grown its own copy of the rule.
    asking = sorted(
        p.name
        for p in DISCOVERY.glob("*.py")
        if re.search(r"is_symlink|islink", p.read_text(encoding="utf-8"))
    )
    assert asking == ["paths.py"]


def test_scan_keeps_safe_names_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    folder = root / "runs"
    (folder / "a").mkdir(parents=True)
    (folder / "b.txt").write_text("x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (folder / "out").symlink_to(outside)
    (folder / "in").symlink_to(folder / "a")
    os.mkfifo(folder / "fifo")
    (folder / os.fsdecode(b"bad\xff")).mkdir()

    everything = scan(folder, root)
    assert sorted(e.name for e in everything.entries) == ["a", "b.txt", "fifo", "in"]
    assert everything.linked
    assert sorted(e.name for e in scan(folder, root, "dir").entries) == ["a", "in"]
    assert [e.name for e in scan(folder, root, "file").entries] == ["b.txt"]
    named = scan(folder, root, "dir", lambda n: n.startswith("a"))
    assert [e.name for e in named.entries] == ["a"] and not named.linked
    assert scan(root / "missing", root) == ([], False)


def test_file_key_sees_a_replaced_file_of_the_same_size_and_time(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{}")
    before = file_key(path)
    assert before is not None
    st = os.stat(path)
    replacement = tmp_path / "new.json"
    replacement.write_text("[]")
    os.utime(replacement, ns=(st.st_atime_ns, st.st_mtime_ns))
    keep = tmp_path / "keep"
    os.rename(path, keep)  # the old inode stays in use, so the new file cannot reuse it
    os.rename(replacement, path)
    after: FileKey | None = file_key(path)
    assert after is not None and after[2:] == before[2:] and after != before
    assert file_key(tmp_path / "missing") is None


# Module-level state that is not a cache: what it is, and why clearing it between tests would
# be wrong or pointless.
NOT_CACHES = {
    "discovery.caches._clears": "the registry itself",
    "tuner_site.indexing._queue": "the background reader's work queue, emptied as it runs",
    "tuner_site.indexing._thread": "the background reader's thread",
    "tuner_site.urls.*": "URL patterns, built once",
}
# Modules that set a process up when imported (WSGI) or that only declare settings.
NOT_SCANNED = {"tuner_site.wsgi", "tuner_site.asgi", "tuner_site.settings"}
MUTABLE = (dict, list, set, bytearray, collections.deque)


def _modules() -> list[str]:
    found = []
    for package in ("discovery", "tuner_site"):
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if "migrations" in parts:
                continue
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            if name not in NOT_SCANNED:
                found.append(name)
    return found


def _stateful(value: object, module: str) -> bool:
    """A mutable container, a memoised function of this module, or an object of one of the
    project's own classes that is not a frozen value."""
    if isinstance(value, MUTABLE):
        return True
    if callable(value) and hasattr(value, "cache_clear"):
        return getattr(value, "__module__", None) == module
    if isinstance(value, type) or inspect.ismodule(value) or inspect.isroutine(value):
        return False
    cls = type(value)
    if not cls.__module__.startswith(("discovery", "tuner_site")):
        return False
    if isinstance(value, (tuple, enum.Enum)):
        return False
    params = getattr(cls, "__dataclass_params__", None)
    return not (params is not None and params.frozen)


def _globals_rebound(module: str) -> set[str]:
    """Names a function of the module assigns with `global`: state, whatever they hold now."""
    path = importlib.import_module(module).__file__
    assert path is not None
    source = Path(path).read_text(encoding="utf-8")
    return {
        name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Global)
        for name in node.names
    }


def _registered_objects() -> dict[int, str]:
    objects = {}
    for dotted in caches.registered():
        module, _, name = dotted.rpartition(".")
        objects[id(getattr(importlib.import_module(module), name))] = dotted
    return objects


def _exempt(dotted: str) -> bool:
    module = dotted.rpartition(".")[0]
    return dotted in NOT_CACHES or f"{module}.*" in NOT_CACHES


def _all_registered() -> frozenset[str]:
    for module in _modules():
        importlib.import_module(module)  # each registers its caches when imported
    return caches.registered()


def unregistered_caches() -> list[str]:
    registered = _all_registered()
    objects = _registered_objects()
    found = []
    for module in _modules():
        mod = importlib.import_module(module)
        for name, value in vars(mod).items():
            dotted = f"{module}.{name}"
            if name.startswith("__") or name.isupper() or _exempt(dotted):
                continue  # dunders, and CONSTANTS (tables written once, read everywhere)
            if _stateful(value, module) and id(value) not in objects:
                found.append(dotted)
        for name in _globals_rebound(module):
            dotted = f"{module}.{name}"
            if dotted not in registered and not _exempt(dotted):
                found.append(dotted)
    return sorted(set(found))


def test_every_module_level_cache_is_registered() -> None:
    # A cache left out of discovery/caches.py is not cleared between tests (conftest clears
    # the registry), and is missing from bench/README.md's table of caches.
    assert unregistered_caches() == []


def test_bench_readme_lists_every_registered_cache() -> None:
    table = (REPO / "bench" / "README.md").read_text(encoding="utf-8")
    assert [n for n in sorted(_all_registered()) if f"`{n}`" not in table] == []


def test_clear_all_empties_the_caches(workspace: Path) -> None:
    from discovery.paths import file_cache, read_json_object

    state = workspace / "state.json"
    state.write_text('{"a": 1}')
    assert read_json_object(state, workspace) == {"a": 1}
    assert file_cache._entries
    caches.clear_all()
    assert not file_cache._entries
