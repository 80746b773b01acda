"""The data folder is its owner's alone, and workers starting at once agree on one secret key.

`tuner.sqlite3` (and the journal, WAL and shared-memory files SQLite makes beside it) holds
sessions and password hashes: readable by another local user, it lets them into admin.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO


def _env(data: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TUNER_", "DJANGO_", "DATABASE_URL", "SECRET_KEY"))
    }
    return env | {"TUNER_DATA_DIR": str(data), "OLLAMA_HOST": "", "LMSTUDIO_HOST": ""} | extra


def _manage(data: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=_env(data, **extra),
        capture_output=True,
        text=True,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> None:
    old = os.umask(0o022)  # the usual default, under which files are made world-readable
    yield
    os.umask(old)


def test_migrate_makes_a_private_folder_database_and_key(tmp_path, umask_022):
    data = tmp_path / "data"
    result = _manage(data, "migrate", "--no-input", "-v0")
    assert result.returncode == 0, result.stderr
    db = data / "tuner.sqlite3"
    assert mode(data) == 0o700
    assert mode(db) == 0o600 and mode(data / "secret_key") == 0o600


def test_the_files_sqlite_makes_beside_the_database_are_private_too(tmp_path, umask_022):
    data = tmp_path / "data"
    assert _manage(data, "migrate", "--no-input", "-v0").returncode == 0
    db = data / "tuner.sqlite3"
    writer = sqlite3.connect(db, isolation_level=None)
    # migrate left the database in WAL mode; a rollback journal is what other tools may switch to.
    writer.execute("PRAGMA journal_mode=DELETE")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute(
        "INSERT INTO tuner_site_promptsetnote (name, description, display_order, "
        "hidden) VALUES ('x', '', 0, 0)"
    )
    journal = db.with_name("tuner.sqlite3-journal")
    assert journal.exists() and mode(journal) == 0o600
    writer.execute("ROLLBACK")
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute(
        "INSERT INTO tuner_site_promptsetnote (name, description, display_order, "
        "hidden) VALUES ('y', '', 0, 0)"
    )
    for side in ("-wal", "-shm"):
        assert mode(db.with_name("tuner.sqlite3" + side)) == 0o600, side
    writer.close()


def test_an_earlier_world_readable_install_is_made_private(tmp_path, umask_022):
    data = tmp_path / "data"
    assert _manage(data, "migrate", "--no-input", "-v0").returncode == 0
    db = data / "tuner.sqlite3"
    data.chmod(0o755)
    db.chmod(0o644)
    wal = db.with_name("tuner.sqlite3-wal")
    wal.touch(mode=0o644)
    wal.chmod(0o644)
    # Held open so the shell's last close does not checkpoint and delete the WAL file.
    reader = sqlite3.connect(db)
    reader.execute("SELECT count(*) FROM tuner_site_promptsetnote").fetchone()
    result = _manage(
        data,
        "shell",
        "-c",
        "from tuner_site.models import PromptSetNote as P; print(P.objects.count())",
    )
    assert result.returncode == 0, result.stderr
    assert mode(data) == 0o700 and mode(db) == 0o600 and mode(wal) == 0o600
    reader.close()


def test_only_migrate_creates_the_database(tmp_path):
    data = tmp_path / "data"
    result = _manage(data, "createsuperuser", "--no-input", "--username", "a", "--email", "a@x.lan")
    assert result.returncode != 0
    assert not (data / "tuner.sqlite3").exists()
    assert _manage(data, "migrate", "--no-input", "-v0").returncode == 0
    assert (data / "tuner.sqlite3").exists()


RACER = """
import os, sys, time
from pathlib import Path
start = Path(sys.argv[1])
import django.core.exceptions, secrets, urllib.parse  # what settings imports, loaded beforehand
while not start.exists():
    time.sleep(0.0005)
try:
    import tuner_site.settings as s
    print(repr(s.SECRET_KEY))
except Exception as exc:
    print("ERROR", type(exc).__name__, exc)
"""


@pytest.mark.parametrize("round_", range(6))
def test_workers_starting_at_once_on_a_fresh_folder_agree_on_one_key(tmp_path, round_):
    data, start = tmp_path / "data", tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(start)],
            cwd=REPO,
            env=_env(data),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    start.touch()
    answers = [w.communicate(timeout=60)[0].strip() for w in workers]
    assert all(not a.startswith("ERROR") for a in answers), answers
    assert len(set(answers)) == 1 and len(answers[0]) > 50, answers
    key = (data / "secret_key").read_text()
    assert repr(key) == answers[0] and mode(data / "secret_key") == 0o600
    assert sorted(p.name for p in data.iterdir()) == ["secret_key", "staticfiles"]  # no leftovers
