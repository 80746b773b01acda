"""The index store: every process keeps what it learned, and no crash leaves it broken."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sampledata import runs as wb

from .conftest import REPO, started

# Rows of log indexes; kept run details share the table under their own prefix.
LOG_ROWS = "SELECT count(*) FROM files WHERE key NOT LIKE 'detail%'"

# A process that reads a workspace through the library with its index in `store`, and
# prints how many log lines it parsed.
COUNT_PARSES = """
import sys
from pathlib import Path
sys.path.insert(0, {repo!r})
import discovery.logindex as logindex
from discovery.runs import Workspace, detail, list_runs
parsed = []
real = logindex.parse_line
logindex.parse_line = lambda raw: parsed.append(raw) or real(raw)
logindex.indexer.configure(Path({store!r}))
runs = list_runs(Workspace.at({root!r}))
best = sorted(str(detail(r).best and detail(r).best.name) for r in runs)
print(len(parsed), len(runs), best)
"""


def run_process(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.fixture
def built(workspace: Path) -> Path:
    for day in range(1, 5):
        wb.make_run(workspace, "sft", started(f"202511{day:02d}_100000"), eval_every=50, seed=day)
    return workspace


def test_a_second_process_reads_the_store_and_parses_nothing(built, tmp_path):
    code = COUNT_PARSES.format(repo=str(REPO), store=str(tmp_path / "index"), root=str(built))
    first = run_process(code).split(" ", 2)
    second = run_process(code).split(" ", 2)
    assert int(first[0]) > 100 and first[1] == "4"  # the first one reads every line
    assert int(second[0]) == 0  # the second one finds them in the store the first wrote at exit
    assert second[1:] == first[1:]  # and answers the same


def test_the_cli_writes_its_index_before_it_exits(built, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUNER_", "DJANGO_"))}
    env |= {
        "TUNER_WORKSPACE": str(built),
        "TUNER_INDEX_DIR": str(tmp_path / "index"),
        "TUNER_DATA_DIR": str(tmp_path / "data"),
    }
    cmd = [sys.executable, "manage.py", "discover", "runs", "--json"]
    first = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    (store,) = (tmp_path / "index").glob("*.sqlite3")
    with sqlite3.connect(store) as conn:
        assert conn.execute(LOG_ROWS).fetchone()[0] == 4  # a row per log
    second = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert json.loads(second.stdout) == json.loads(first.stdout)


WRITE_FOREVER = """
import sys, itertools
from pathlib import Path
sys.path.insert(0, {repo!r})
from discovery.indexstore import IndexStore
store = IndexStore(Path({path!r}))
print("ready", flush=True)
for n in itertools.count():
    for i in range(200):
        # Busy, as the indexer says while it reads: the background writer waits, so each
        # round is written by flush() in one transaction. (Without it the writer may take
        # part of a round whenever it wakes: rows stay whole, rounds do not.)
        store.touch()
        store.save(f"/log/{{i}}", (n, i, b"x" * 4000))
    store.flush()
"""


def test_a_writer_killed_at_any_moment_leaves_a_readable_store(tmp_path):
    from discovery.indexstore import IndexStore

    path = tmp_path / "index.sqlite3"
    for delay in (0.05, 0.2, 0.4):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITE_FOREVER.format(repo=str(REPO), path=str(path))],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        rows = [IndexStore(path).load(f"/log/{i}") for i in range(200)]
        # Whole transactions only: every row intact, all 200 of one round or none yet.
        present = [r for r in rows if r is not None]
        assert len(present) in (0, 200)
        assert all(r[2] == b"x" * 4000 for r in present)
        assert len({r[0] for r in present}) <= 1


# A process that reads a workspace with its index in `store` and prints, as JSON, every run's
# detail in the run JSON's shape, and which workspace files it opened.
DETAILS = """
import json, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
import discovery.paths as paths
from discovery.logindex import indexer
from discovery.runs import Workspace, detail, list_runs
opened = []
real = paths.open_in
paths.open_in = lambda path, root: opened.append(str(path)) or real(path, root)
indexer.configure(Path({store!r}))
out = {{}}
for r in list_runs(Workspace.at({root!r})):
    d = detail(r)
    out[r.id] = [
        d.ranking.rule, d.ranking.best, list(d.ranking.scores), d.header.base_model, d.step,
        [[c.name, c.step, str(c.path), c.metrics, c.metric_steps] for c in d.checkpoints],
        d.history.metric_names(), d.history.at(d.step).values, d.lineage,
    ]
print(json.dumps([out, opened]))
"""


def _details(root: Path, store: Path) -> tuple[dict, list[str]]:
    code = DETAILS.format(repo=str(REPO), store=str(store), root=str(root))
    return tuple(json.loads(run_process(code)))  # type: ignore[return-value]


def test_a_restart_restores_each_runs_detail_without_opening_its_files(built, tmp_path):
    store = tmp_path / "index"
    first, opened_first = _details(built, store)
    second, opened_second = _details(built, store)
    assert second == first  # every field pages and the JSON show, log lookups included
    assert any(p.endswith("trainer_state.json") for p in opened_first)
    assert opened_second == []  # no log, lineage or trainer_state.json opened again


def test_a_run_whose_files_changed_is_read_again(built, tmp_path):
    store = tmp_path / "index"
    first, _ = _details(built, store)
    run = next(built.glob("Trainers/*/*/20251102_100000"))
    log = next(run.glob("logs/training_*.jsonl"))
    with log.open("a") as f:
        f.write('{"step": 301, "loss": 0.001}\n')
    second, opened = _details(built, store)
    changed = next(k for k in first if k.endswith("20251102_100000"))
    assert second[changed][4] == 301 and first[changed][4] != 301
    assert {k: v for k, v in second.items() if k != changed} == {
        k: v for k, v in first.items() if k != changed
    }
    assert opened and all(str(run) in p for p in opened)  # only that run's files


def test_a_first_answer_still_being_checked_is_not_kept(built, tmp_path):
    from discovery import detailstore
    from discovery.logindex import indexer
    from discovery.runs import Workspace, clear_memo, detail, list_runs

    store = tmp_path / "index"
    indexer.configure(store, background=True)
    try:
        runs = list_runs(Workspace.at(built))
        assert all(detail(r).history.approximate for r in runs)
        assert indexer.wait(60)
        indexer.flush()
        rows = sqlite3.connect(next(store.glob("*.sqlite3"))).execute("SELECT key FROM files")
        assert not [k for (k,) in rows if k.startswith(detailstore.KEY_PREFIX)]
        clear_memo()
        exact = [detail(r) for r in list_runs(Workspace.at(built))]
        assert not any(d.history.approximate for d in exact)
        indexer.flush()
        rows = sqlite3.connect(next(store.glob("*.sqlite3"))).execute("SELECT key FROM files")
        kept = [k for (k,) in rows if k.startswith(detailstore.KEY_PREFIX)]
        assert len(kept) == 4, kept
    finally:
        indexer.configure(None)


def test_a_kept_detail_of_another_layout_or_signature_is_ignored(built):
    from discovery import detailstore
    from discovery.runs import Workspace, detail, list_runs

    run = list_runs(Workspace.at(built))[0]
    d = detail(run)
    parts = (d.history, d.checkpoints, d.ranking, d.header, d.lineage, d.global_step)
    row = detailstore.encode(repr(run.signature), parts, d.summary.kept_fields())
    restored = detailstore.decode(row, repr(run.signature))
    assert restored is not None and restored[1] == d.checkpoints and restored[2] == d.ranking
    assert detailstore.summary(row, repr(run.signature)) == d.summary.kept_fields()
    assert detailstore.decode(row, repr(run.signature) + "x") is None
    assert detailstore.summary(row, repr(run.signature) + "x") is None
    assert detailstore.decode(("old-layout", *row[1:]), repr(run.signature)) is None
    assert detailstore.summary(("old-layout", *row[1:]), None) is None
    assert detailstore.decode(row[:3], repr(run.signature)) is None
    assert detailstore.summary(row[:3], None) is None
    assert detailstore.decode((*row[:2], row[2][:40], row[3]), repr(run.signature)) is None


def test_a_restart_knows_which_runs_are_kept_without_decoding_them(built, tmp_path):
    """A page asks of every run it does not show whether it is read: after a restart the
    answer comes from the kept rows' signatures, and a detail is decoded only when shown."""
    from discovery.logindex import indexer
    from discovery.runs import (
        Workspace,
        clear_memo,
        detail,
        is_ready,
        list_runs,
        summary,
        unready,
        was_read,
    )

    store = tmp_path / "index"
    indexer.configure(store)
    try:
        ws = Workspace.at(built)
        before = {r.id: detail(r) for r in list_runs(ws)}
        indexer.flush()
        indexer.configure(store)  # a new process: the store read afresh, nothing in memory
        clear_memo()
        runs = list_runs(ws)
        assert unready(runs) == [] and all(is_ready(r) for r in runs)
        assert not any(was_read(r) for r in runs)

        # A run list's row is the summary kept beside the detail: nothing decoded.
        # (A kept row holds its stop sentence whatever the status: the clock decides.)
        def shown(s):
            return s.run, s.kept_fields()[:-1], s.status_reason

        assert [shown(summary(r)) for r in runs] == [shown(before[r.id].summary) for r in runs]
        assert not any(was_read(r) for r in runs)
        assert detail(runs[0]).checkpoints == before[runs[0].id].checkpoints
        assert was_read(runs[0]) and not was_read(runs[1])
        # A kept row of other files is not ready: the run's log grew since.
        log = next(iter(runs[1].signature[2]))[0]
        with open(log, "a") as f:
            f.write('{"step": 100000, "loss": 0.5}\n')
        assert [r.id for r in unready(list_runs(ws))] == [runs[1].id]
    finally:
        indexer.configure(None)


def test_a_training_runs_detail_is_not_kept_its_signature_changes_every_poll(built, tmp_path):
    from discovery import detailstore
    from discovery.logindex import indexer
    from discovery.runs import Workspace, detail, list_runs

    wb.make_run(built, "sft", started("20251110_100000"), done=40, completed=False, seed=9)
    store = tmp_path / "index"
    indexer.configure(store)
    try:
        runs = list_runs(Workspace.at(built))
        assert sorted(r.status for r in runs).count("running") == 1
        for r in runs:
            detail(r)
        indexer.flush()
        rows = sqlite3.connect(next(store.glob("*.sqlite3"))).execute("SELECT key FROM files")
        kept = {k.removeprefix(detailstore.KEY_PREFIX) for (k,) in rows}
        running = next(r for r in runs if r.status == "running")
        assert running.id not in kept and len(kept & {r.id for r in runs}) == 4
    finally:
        indexer.configure(None)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="the split needs a second core")
def test_a_commands_first_read_is_shared_with_a_second_process_and_answers_the_same(
    built, tmp_path, monkeypatch
):
    from discovery import logindex
    from discovery.runs import Workspace, clear_memo, detail, list_runs, read_ahead

    def answer() -> list:
        return [(d.run.id, d.checkpoints, d.ranking, d.history.skipped) for d in details]

    ws = Workspace.at(built)
    details = [detail(r) for r in list_runs(ws)]  # every log read in full, here
    alone = answer()

    logindex.indexer.configure(tmp_path / "index")
    clear_memo()
    read_here: list[str] = []
    real = logindex.verify_file
    monkeypatch.setattr(
        logindex, "verify_file", lambda p, r, t=(): read_here.append(p) or real(p, r, t)
    )
    runs = list_runs(ws)
    read_ahead(runs)
    assert len(read_here) == 2  # of the four logs: the second process read the other two
    parsed: list[bytes] = []
    real_parse = logindex.parse_line
    monkeypatch.setattr(logindex, "parse_line", lambda raw: parsed.append(raw) or real_parse(raw))
    details = [detail(r) for r in runs]
    # Each index came back with the entries its checkpoint table needs: no line read again.
    assert parsed == [] and answer() == alone
