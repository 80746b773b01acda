"""The README's first command on a first start: no database yet, no workspace configured."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import httpx
import pytest

from .conftest import REPO
from .fake_servers import free_port


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_migrates_a_missing_database_and_serves_the_demo_on_loopback(tmp_path):
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TUNER_", "DJANGO_", "DATABASE_URL", "OLLAMA", "LMSTUDIO"))
    }
    env |= {"TUNER_DATA_DIR": str(tmp_path / "data"), "PORT": str(port), "OLLAMA_HOST": ""}
    env["LMSTUDIO_HOST"] = ""
    proc = subprocess.Popen(
        ["make", "run"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        response = None
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/prompt-sets/", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.3)
        assert response is not None, "the server never answered"
        assert response.status_code == 200  # this page reads the database
        assert "tool_prompts" in response.text
        runs = httpx.get(f"http://127.0.0.1:{port}/api/runs/?status=running", timeout=5).json()
        assert runs["count"] == 1  # the demo's run that is training right now
        assert (tmp_path / "data" / "tuner.sqlite3").exists()
        assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o777 == 0o600
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    assert proc.stdout is not None
    console = proc.stdout.read().decode()
    assert "  Applying contenttypes.0001_initial... OK\n" in console  # one line each


def test_the_demos_running_run_keeps_training_and_then_finishes(tmp_path):
    from discovery.runs import Workspace, detail, list_runs
    from sampledata.demo import DEMO_RUNNING, build_demo, follow_demo

    root = build_demo((tmp_path / "demo").resolve())
    running = [r for r in list_runs(Workspace.at(root)) if r.status == "running"]
    assert len(running) == 1
    before = detail(running[0]).history.last_step
    follow_demo(root, interval=0)
    after = [r for r in list_runs(Workspace.at(root)) if r.path == running[0].path][0]
    assert after.status == "completed" and after.has_final_model
    d = detail(after)
    assert d.history.last_step == DEMO_RUNNING["max_steps"] > before
    assert after.checkpoint_steps[-1] == DEMO_RUNNING["max_steps"]


def test_pyproject_uses_no_field_setuptools_deprecates():
    # A TOML table for `project.license` prints a deprecation banner on every `make install`.
    import tomllib

    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert isinstance(data["project"]["license"], str)  # an SPDX expression
    assert any(r.startswith("setuptools>=77") for r in data["build-system"]["requires"])


def test_building_the_demo_again_keeps_its_finished_runs_and_your_results(tmp_path):
    """`make run` rebuilds the demo each time: a sweep, a link or an evaluation made in it must
    still find its run afterwards, and an evaluation's result must not be deleted."""
    from datetime import datetime

    from discovery.runs import Workspace, list_runs
    from sampledata.demo import build_demo, demo_started

    root = (tmp_path / "demo").resolve()
    first, later = datetime(2026, 12, 1, 10, 0, 0), datetime(2026, 12, 3, 16, 30, 0)
    build_demo(root, now=first)
    before = {r.id for r in list_runs(Workspace.at(root))}
    results = root / "Evaluator" / "results"
    mine = results / "run_20261201_110000.json"  # what an evaluation job wrote
    mine.write_bytes((results / "tool_prompts_kto.json").read_bytes())
    build_demo(root, now=later)
    after = {r.id for r in list_runs(Workspace.at(root))}
    running = "rtx3090_kto/{:%Y%m%d_%H%M%S}"
    assert before - after == {running.format(demo_started(first))}  # only it starts over
    assert after - before == {running.format(demo_started(later))}
    assert mine.exists() and (results / "tool_prompts_kto.json").exists()
