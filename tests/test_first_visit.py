"""A never-seen workspace: /runs/ answers from the walk and fills in as logs are read."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from discovery.logindex import indexer
from discovery.runs import Workspace, clear_memo, detail, get_run, is_ready, list_runs
from sampledata import runs as wb
from tuner_site import indexing, run_listing

from .conftest import REPO, started

# Rows of log indexes; kept run details share the table under their own prefix.
LOG_ROWS = "SELECT count(*) FROM files WHERE key NOT LIKE 'detail%'"

pytestmark = pytest.mark.django_db


@pytest.fixture
def many_runs(use_workspace: Path, settings) -> Path:
    for day in range(1, 9):
        wb.make_run(use_workspace, "sft", started(f"202511{day:02d}_100000"), max_steps=200)
    settings.TUNER_SYNC_INDEX_LIMIT = 3
    return use_workspace


def test_a_first_visit_sorted_by_score_answers_from_the_walk_and_shows_progress(
    client, many_runs, monkeypatch
):
    monkeypatch.setattr(run_listing, "index_in_background", lambda runs: None)
    html = client.get("/runs/?sort=best_score").content.decode()
    assert "Indexed 0 of 8 runs" in html and 'hx-trigger="every 1s ' in html
    assert html.count("reading log…") == 8
    assert "20251108_100000" in html  # the walk's columns are there already


def test_a_first_visit_in_an_order_the_walk_knows_reads_only_its_page(
    client, many_runs, settings, monkeypatch
):
    settings.TUNER_RUNS_PER_PAGE = 3
    queued: list[str] = []
    monkeypatch.setattr(
        run_listing, "index_in_background", lambda runs: queued.extend(r.name for r in runs)
    )
    html = client.get("/runs/").content.decode()
    # The page's three runs, newest first, are complete; the other five wait their turn.
    assert "reading log…" not in html and html.count(">200<") == 3
    assert "Indexed 3 of 8 runs; the others' logs are read in the background" in html
    assert sorted(queued) == [f"202511{day:02d}_100000" for day in range(1, 6)]
    shown = [r for r in list_runs(Workspace.at(many_runs)) if is_ready(r)]
    assert sorted(r.name for r in shown) == [f"202511{day:02d}_100000" for day in (6, 7, 8)]
    # Its rows cannot change while the others are read: no fast poll for them.
    assert 'hx-trigger="every 1s ' not in html
    data = json.loads(client.get("/api/runs/?sort=run&page=2").content)
    assert [r["run"] for r in data["runs"]] == [f"202511{d:02d}_100000" for d in (4, 5, 6)]
    assert all(r["last_step"] == 200 for r in data["runs"])
    # A sort by score needs every run: the five read come first, the others join as read.
    settings.TUNER_SYNC_INDEX_LIMIT = 2
    html = client.get("/runs/?sort=best_score").content.decode()
    assert html.count(">200<") == 3 and "reading log…" not in html
    assert "the order and the search take in the others as their logs are read" in html
    assert 'hx-trigger="every 1s ' in html


def test_the_table_fills_in_once_the_background_reader_is_done(client, many_runs):
    client.get("/runs/?sort=best_score")
    indexing.wait(10)
    html = client.get("/runs/").content.decode()
    assert "Indexed" not in html and "reading log…" not in html
    assert 'hx-trigger="every 1s ' not in html
    assert ">200<" in html  # last step


def test_the_json_api_always_answers_in_full(client, many_runs):
    data = json.loads(client.get("/api/runs/").content)
    assert all(r["last_step"] == 200 and r["best_checkpoint"] for r in data["runs"])


def test_a_few_unread_runs_are_read_before_answering(client, many_runs, settings):
    settings.TUNER_SYNC_INDEX_LIMIT = 50
    html = client.get("/runs/").content.decode()
    assert "Indexed" not in html and "reading log…" not in html


def test_the_memo_follows_changes_on_disk_and_the_clock(many_runs):
    root = many_runs
    run = get_run(Workspace.at(root), "rtx3090_sft", "20251101_100000")
    first = detail(run)
    assert detail(run).history is first.history  # reused while nothing changed
    wb.add_checkpoint(run.path, 250)
    run = get_run(Workspace.at(root), "rtx3090_sft", "20251101_100000")
    assert 250 in [c.step for c in detail(run).checkpoints]
    # A run that is training now goes quiet: same files, so a memo hit, but a new status.
    live = wb.make_run(
        root, "kto", started("20251120_100000"), max_steps=100, done=60, completed=False
    )
    assert detail(get_run(Workspace.at(root), "rtx3090_kto", live.name)).run.status == "running"
    later = get_run(Workspace.at(root), "rtx3090_kto", live.name, now=time.time() + 3600)
    assert detail(later).run.status == "stopped"


def test_discover_index_reads_every_run_with_a_progress_bar(many_runs, tmp_path):
    indexer.configure(tmp_path / "index")
    clear_memo()
    out = StringIO()
    call_command("discover", "index", stdout=out)
    assert "8/8 runs" in out.getvalue() and "Indexed 8 run(s)" in out.getvalue()
    stores = list((tmp_path / "index").glob("*.sqlite3"))
    assert len(stores) == 1  # one store for the workspace
    with sqlite3.connect(stores[0]) as conn:
        assert conn.execute(LOG_ROWS).fetchone()[0] == 8  # a row per log
    assert all(
        is_ready(r) for r in list_runs(Workspace.at(many_runs))
    )  # every run answers from memory


def test_every_run_of_an_mlx_trainer_fills_in_from_one_background_pass(client, many_runs):
    # Its runs share one folder: queued by path, only one of the three would be read.
    start = datetime(2025, 11, 20, 9, 0)
    wb.make_mlx_trainer(
        many_runs,
        [
            (start, 30, True),
            (start + timedelta(hours=2), 30, True),
            (start + timedelta(hours=4), 30, True),
        ],
    )
    mlx_runs = [r for r in list_runs(Workspace.at(many_runs)) if r.type == "mlx"]
    assert len(mlx_runs) == 3
    client.get("/runs/?sort=-last_step")
    indexing.wait(10)
    assert all(is_ready(r) for r in list_runs(Workspace.at(many_runs)))
    assert "reading log…" not in client.get("/runs/").content.decode()


def test_a_server_keeps_its_start_up_objects_out_of_full_garbage_collections(tmp_path):
    # A full collection traversing all of Django took 70 ms of a thousand runs' first page.
    code = (
        "import gc, tuner_site.wsgi\n"
        "from discovery.logindex import indexer\n"
        "print(gc.get_freeze_count(), indexer.background)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUNER_", "DJANGO_"))}
    env |= {"TUNER_DATA_DIR": str(tmp_path), "OLLAMA_HOST": "", "LMSTUDIO_HOST": ""}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    frozen, background = out.stdout.split()
    assert int(frozen) > 10_000 and background == "True", out.stderr


def test_a_run_training_on_another_page_is_not_unread_again_once_read(
    client, use_workspace, settings
):
    settings.TUNER_RUNS_PER_PAGE = 3
    for day in range(2, 6):
        wb.make_run(use_workspace, "sft", started(f"202511{day:02d}_100000"), max_steps=100)
    training = wb.make_run(
        use_workspace, "sft", started("20251101_100000"), max_steps=100, done=40, completed=False
    )
    log = next(training.rglob("training_*.jsonl"))
    html = client.get("/runs/").content.decode()
    assert "Indexed 3 of 5 runs" in html  # its first visit: two runs off the page to read
    indexing.wait(10)
    for step in (45, 50):
        with log.open("a") as f:  # the trainer logs its next step: its files changed
            f.write(json.dumps({"step": step, "loss": 1.0}) + "\n")
        html = client.get("/runs/").content.decode()
        # Read once, it is not counted as unread, nor is the page polled for it.
        assert "Indexed" not in html and 'hx-trigger="every' not in html
