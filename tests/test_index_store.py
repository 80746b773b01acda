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

from .conftest import started

REPO = Path(__file__).resolve().parent.parent

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
        assert conn.execute("SELECT count(*) FROM files").fetchone()[0] == 4  # a row per log
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
