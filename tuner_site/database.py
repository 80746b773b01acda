"""What to tell people when the dashboard's own database fails: busy, missing, not set up.

Pages never fall back to defaults when it does: a hidden prompt set shown, or an edited
description replaced by its default, would be a wrong answer. They answer 503 saying why.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import DatabaseError, OperationalError, ProgrammingError

from .sqlite.base import DatabaseMissing

RETRY_AFTER_S = 5


@dataclass(frozen=True)
class Problem:
    message: str
    busy: bool = False  # a lock: the same request will work in a moment


def problem(exc: BaseException) -> Problem | None:
    """The explanation for a database error, or None for one that is a bug."""
    if not isinstance(exc, DatabaseError):
        return None
    if isinstance(exc, DatabaseMissing):
        return Problem(
            # The file's name only: this page reaches anyone when login is off.
            f"The dashboard's database {exc.path.name} is missing: it was deleted or moved while "
            "the server ran. Restore the file, or run `manage.py migrate` to start a new, "
            "empty one (descriptions and other edits made in admin are then gone), and reload."
        )
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return Problem(
            "The dashboard's database is busy: another program holds a lock on it. "
            "Nothing was changed; try again in a moment.",
            busy=True,
        )
    if "no such table" in text or (isinstance(exc, ProgrammingError) and "does not" in text):
        return Problem(
            "The dashboard's database is not set up yet: run `manage.py migrate`, then reload."
        )
    if isinstance(exc, OperationalError):
        return Problem(
            f"The dashboard's database cannot be opened ({exc}). Check `DATABASE_URL`, and "
            "that the database server runs."
        )
    return None
