"""The documented LAN setup passes Django's deployment checks; plain HTTP is flagged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import REPO


def check_deploy(tmp_path: Path, *command: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TUNER_", "DJANGO_"))}
    clean.pop("SECRET_KEY", None)
    return subprocess.run(
        [
            sys.executable,
            "manage.py",
            *(command or ("check", "--deploy", "--fail-level", "WARNING")),
        ],
        cwd=REPO,
        env=clean | {"TUNER_DATA_DIR": str(tmp_path), "ALLOWED_HOSTS": "box.lan"} | env,
        capture_output=True,
        text=True,
    )


def test_the_lan_setup_has_no_deployment_issues(tmp_path):
    # As `make serve-lan` does: with debug off, pages need the collected static files.
    collect = check_deploy(tmp_path, "collectstatic", "--noinput", DEBUG="0", TUNER_HTTPS="1")
    assert collect.returncode == 0, collect.stderr
    result = check_deploy(tmp_path, DEBUG="0", TUNER_HTTPS="1")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout
    key = tmp_path / "secret_key"
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_text()) >= 50


def test_plain_http_without_https_settings_is_reported(tmp_path):
    result = check_deploy(tmp_path, DEBUG="0", TUNER_HTTPS="0")
    assert result.returncode != 0
    assert "security.W012" in result.stderr + result.stdout


def test_bad_inference_server_settings_fail_the_system_check(tmp_path):
    result = check_deploy(tmp_path, TUNER_OPENAI_BACKENDS="just-a-url")
    assert result.returncode != 0
    assert "tuner.E001" in result.stderr and "name=url" in result.stderr


def test_settings_import_no_app_code():
    code = (
        "import sys, tuner_site.settings; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('discovery', 'sampledata')"
        " or m.startswith('tuner_site.') and m != 'tuner_site.settings'))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_jobs_through_redis_without_a_usable_redis_url_say_which_setting(tmp_path):
    rq = {"TUNER_TASKS_BACKEND": "django_tasks_rq.RQBackend"}
    rq |= {"TUNER_TASKS_APPS": "django_rq,django_tasks_rq"}
    unset = check_deploy(tmp_path, "check", **rq)
    assert unset.returncode != 0
    assert "needs TUNER_RQ_URL, the Redis its jobs wait in" in unset.stderr
    for url in ("not a url", "http://127.0.0.1:6379/0", "127.0.0.1:6379"):
        bad = check_deploy(tmp_path, "check", **rq, TUNER_RQ_URL=url)
        assert bad.returncode != 0, url
        assert f"TUNER_RQ_URL must be redis://host:6379/0 (or rediss://, unix://), not {url!r}" in (
            bad.stderr
        ), bad.stderr[-500:]
    # A Redis that is not there is the job's to say (it fails, "could not be queued"): the
    # settings hold.
    down = check_deploy(tmp_path, "check", **rq, TUNER_RQ_URL="redis://127.0.0.1:9/0")
    assert down.returncode == 0, down.stderr
