"""DEBUG=0 without `collectstatic`: refused at start-up in one line, never a 500 on every page."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import REPO


def _run(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBUG": "0", "TUNER_DATA_DIR": str(data)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


def test_debug_off_without_collected_static_files_is_refused_at_start_up(tmp_path):
    data = tmp_path / "data"
    boot = _run(data, "-c", "import tuner_site.wsgi")
    # 3 is gunicorn's "a worker failed to boot": it stops rather than start workers forever.
    assert boot.returncode == 3, boot.stderr
    [line] = boot.stderr.strip().splitlines()
    assert "python manage.py collectstatic" in line and str(data / "staticfiles") in line
    # Every command says so (a warning: `migrate` comes before `collectstatic`).
    migrate = _run(data, "manage.py", "migrate", "--no-input", "-v0")
    assert migrate.returncode == 0 and "tuner.W002" in migrate.stderr
    assert "collectstatic" in migrate.stderr

    collect = _run(data, "manage.py", "collectstatic", "--noinput")
    assert collect.returncode == 0, collect.stderr
    assert _run(data, "-c", "import tuner_site.wsgi").returncode == 0
    check = _run(data, "manage.py", "check")
    assert check.returncode == 0 and "tuner.W002" not in check.stderr, check.stderr


def test_debug_on_needs_no_collected_static_files(tmp_path):
    env = {**os.environ, "DEBUG": "1", "TUNER_DATA_DIR": str(tmp_path / "data")}
    boot = subprocess.run(
        [sys.executable, "-c", "import tuner_site.wsgi"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert boot.returncode == 0, boot.stderr
