"""Every module-level cache, with the function that empties it: one call clears them all.

Each cache is keyed so that it is never wrong about a file (by file identity, or for a
second or two); tests start each from nothing all the same, and a cache left out of here
would carry one test's workspace into the next. `tests/test_homes.py` fails on a module-level
cache that is not registered; `bench/README.md` says what each is keyed by and why it exists.
"""

from __future__ import annotations

from collections.abc import Callable

# "module.name" of each cache → the function that empties it (one function may empty several)
_clears: dict[str, Callable[[], None]] = {}


def register(module: str, clear: Callable[[], None], *names: str) -> None:
    """The module's globals `names` are caches that `clear()` empties."""
    for name in names:
        _clears[f"{module}.{name}"] = clear


def registered() -> frozenset[str]:
    return frozenset(_clears)


def clear_all() -> None:
    """Empty every registered cache (each once, even when it empties several)."""
    for clear in dict.fromkeys(_clears.values()):
        clear()
