"""Very long lists a page at a time: 10,000 models on a server, 5,000 checkpoints in a run.

Before, the servers' JSON was 8.9 MB every 3 s and a training run's page 2 MB every poll.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from sampledata import runs as wb
from tuner_site.paging import CHECKPOINTS_PER_PAGE, MODELS_PER_PAGE

from . import fake_servers as fs

pytestmark = pytest.mark.django_db

N_MODELS = 10_000
N_CHECKPOINTS = 5_000
RUN = "20251101_100000"
RUN_URL = f"/runs/rtx3090_sft/{RUN}/"


@pytest.fixture
def crowded_servers(settings, use_workspace) -> Iterator[tuple[fs.FakeServer, fs.FakeServer]]:
    ollama = fs.FakeServer("ollama", "many").start()
    lms = fs.FakeServer("lmstudio", "many").start()
    settings.OLLAMA_HOST, settings.LMSTUDIO_HOST = ollama.host, lms.host
    # Paging is under test, not the deadline (test_backends has those): 10,000 models made and
    # parsed in this one process can take seconds when the machine is loaded.
    settings.TUNER_BACKEND_TIMEOUT = 15.0
    settings.TUNER_BACKEND_CACHE_SECONDS = 600  # one answer, paged many times
    yield ollama, lms
    ollama.stop()
    lms.stop()


def test_the_servers_json_pages_their_models_with_counts(client, crowded_servers):
    response = client.get("/api/backends/")
    assert len(response.content) < 400_000, len(response.content)
    for b in json.loads(response.content)["backends"]:
        assert b["available"], b["error"]
        assert b["model_count"] == N_MODELS and b["loaded_count"] == N_MODELS // 10
        assert b["models_page"] == 1 and b["models_pages"] == N_MODELS // MODELS_PER_PAGE
        assert len(b["models"]) == MODELS_PER_PAGE
        assert all(m["loaded"] for m in b["models"])  # loaded ones first
    last = json.loads(client.get("/api/backends/?models_page=50").content)["backends"][0]
    assert len(last["models"]) == MODELS_PER_PAGE and not any(m["loaded"] for m in last["models"])
    seen = {
        m["id"]
        for page in range(1, 51)
        for m in json.loads(client.get(f"/api/backends/?models_page={page}").content)["backends"][
            0
        ]["models"]
    }
    assert len(seen) == N_MODELS  # every model on exactly one page
    past = client.get("/api/backends/?models_page=51")  # as ?page= past the last page is
    assert past.status_code == 400 and b"between 1 and 50" in past.content
    assert client.get("/api/backends/?models_page=0").status_code == 400


def test_the_servers_page_and_its_polls_show_a_page_of_models(client, crowded_servers):
    page = client.get("/backends/?models_page=2")
    html = page.content.decode()
    assert len(page.content) < 1_000_000, len(page.content)
    assert "Page 2 of 50" in html and 'href="?models_page=3"' in html
    assert html.count('class="model"') == 2 * MODELS_PER_PAGE
    assert 'hx-get="/backends/?models_page=2"' in html  # polling stays on this page
    poll = client.get(
        "/backends/?models_page=2", headers={"HX-Request": "true", "HX-Target": "backends-panels"}
    )
    assert len(poll.content) < 1_000_000 and "Page 2 of 50" in poll.content.decode()
    overview = client.get("/").content.decode()
    assert "and 990 more loaded" in overview
    assert len(overview) < 200_000


@pytest.fixture(scope="module")
def long_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("long") / "ws"
    wb.make_run(
        root,
        "sft",
        datetime(2025, 11, 1, 10),
        # Short of max_steps: a trainer_state at its last step would say the run finished.
        max_steps=N_CHECKPOINTS + 1000,
        done=N_CHECKPOINTS,
        save_every=1,
        log_every=1,
        eval_every=1000,
        completed=False,
    )
    return root.resolve()


@pytest.fixture
def run_ws(settings, long_run: Path) -> Path:
    settings.TUNER_WORKSPACE = long_run
    settings.TUNER_RUNNING_WINDOW = 10**9  # training still, so its page polls
    return long_run


def _rows(html: str) -> list[str]:
    table = html[html.index('<table class="checkpoints') :]
    return re.findall(r'<a href="/runs/rtx3090_sft/[^/]+/(checkpoint-\d+)/">', table)


def test_a_run_with_thousands_of_checkpoints_pages_its_table(client, run_ws):
    page = client.get(RUN_URL)
    html = page.content.decode()
    assert len(page.content) < 400_000, len(page.content)
    rows = _rows(html)
    best = json.loads(client.get("/api" + RUN_URL).content)["best_checkpoint"]["name"]
    # This page's checkpoints, and the best and newest pinned above them.
    assert f"checkpoint-{N_CHECKPOINTS}" in rows[:2] and best in rows[:2]
    assert rows[2:] == [f"checkpoint-{i}" for i in range(1, CHECKPOINTS_PER_PAGE + 1)]
    assert "Checkpoints 1–200 of 5,000" in html and 'href="?page=2"' in html
    assert f"in {N_CHECKPOINTS:,} checkpoints" in html
    last = client.get(RUN_URL + "?page=25").content.decode()
    assert _rows(last)[-1] == f"checkpoint-{N_CHECKPOINTS}"
    assert client.get(RUN_URL + "?page=26").status_code == 400


def test_polling_a_training_run_does_not_resend_every_checkpoint(client, run_ws):
    html = client.get(RUN_URL + "?page=3").content.decode()
    assert 'hx-get="/runs/rtx3090_sft/20251101_100000/?page=3"' in html
    poll = client.get(RUN_URL + "?page=3", headers={"HX-Request": "true", "HX-Target": "run-live"})
    assert len(poll.content) < 400_000, len(poll.content)
    assert "<html" not in poll.content.decode()
    assert "checkpoint-401" in _rows(poll.content.decode())


def test_the_run_json_pages_its_checkpoints(client, run_ws):
    response = client.get("/api" + RUN_URL)
    assert len(response.content) < 300_000, len(response.content)
    data = json.loads(response.content)
    assert data["checkpoint_count"] == N_CHECKPOINTS  # unchanged: every checkpoint
    assert data["checkpoints_total"] == N_CHECKPOINTS
    assert data["checkpoints_pages"] == N_CHECKPOINTS // CHECKPOINTS_PER_PAGE
    assert [c["name"] for c in data["checkpoints"]][:2] == ["checkpoint-1", "checkpoint-2"]
    assert len(data["checkpoints"]) == CHECKPOINTS_PER_PAGE
    names = set()
    for page in range(1, data["checkpoints_pages"] + 1):
        part = json.loads(client.get(f"/api{RUN_URL}?page={page}").content)
        assert part["checkpoints_page"] == page
        names |= {c["name"] for c in part["checkpoints"]}
    assert len(names) == N_CHECKPOINTS
    assert client.get(f"/api{RUN_URL}?page=26").status_code == 400
    assert client.get(f"/api{RUN_URL}?page=x").status_code == 400
