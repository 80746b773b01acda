"""Rules with one home: each is decided in one module, and these tests keep it so."""

from __future__ import annotations

import os
import re
from pathlib import Path

from discovery.paths import FileKey, file_key, scan

DISCOVERY = Path(__file__).resolve().parent.parent / "discovery"


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
