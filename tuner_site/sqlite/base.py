"""SQLite that keeps the dashboard's database private and never makes a new one behind its back.

The file is created by `manage.py migrate` only, readable by its owner alone (SQLite gives its
journal, WAL and shared-memory files the database file's mode). Any other connection opens it
read-write without creating it: a database deleted while the server runs is an error that says
so, not an empty database that silently loses every edit.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.db import OperationalError
from django.db.backends.sqlite3 import base

PRIVATE_FILE, PRIVATE_DIR = 0o600, 0o700
SIDE_FILES = ("-journal", "-wal", "-shm")


class DatabaseMissing(OperationalError):
    """The database file is not there: deleted while running, or never made by migrate."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"The database file {path} does not exist.")
        self.path = path


def make_private(path: Path, mode: int) -> None:
    """Take group and other access away from a file or folder this user owns."""
    try:
        st = os.stat(path)
        if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o077:
            os.chmod(path, mode)
    except (OSError, AttributeError):
        pass  # not there, not ours, or no owners (Windows): nothing to tighten


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def path(self) -> Path | None:
        return None if self.is_in_memory_db() else Path(self.settings_dict["NAME"]).resolve()

    def create_file(self) -> None:
        """The empty database file (SQLite's for an empty database), private from the start."""
        path = self.path
        if path is None:
            return
        path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        path = self.path
        if path is not None:
            if not path.is_file():
                raise DatabaseMissing(path)
            # Installs from before this rule: tighten what an earlier version left readable.
            for p in (path, *(path.with_name(path.name + s) for s in SIDE_FILES)):
                make_private(p, PRIVATE_FILE)
            # mode=rw: if the file vanishes between the check and here, fail, do not create.
            conn_params = {**conn_params, "database": f"{path.as_uri()}?mode=rw"}
        return super().get_new_connection(conn_params)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Transactions that lock nothing until they write: for a retry that only reads.

        With IMMEDIATE transactions a locked database fails an admin page at its first line,
        before it can show the form again with what was typed.
        """
        self.ensure_connection()
        saved: str | None = self.transaction_mode  # type: ignore[has-type]
        self.transaction_mode = None
        try:
            yield
        finally:
            self.transaction_mode = saved
