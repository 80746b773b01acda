"""Every list pages by one rule (tuner_site/paging.py): a page past the last is a 400 that says
the range, on the page and its JSON alike; before, `?models_page=999` was an empty list."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import fake_servers as fs
from .conftest import SFT_RUN

pytestmark = pytest.mark.django_db

RUN = f"/runs/rtx3090_sft/{SFT_RUN}/"


@pytest.fixture
def lists(three_runs: Path, settings) -> Iterator[Path]:
    cases = [{"id": f"c{i}", "question": f"question {i}"} for i in range(3)]
    (three_runs / "Evaluator" / "prompts" / "small.json").write_text(json.dumps(cases))
    server = fs.FakeServer("ollama").start()
    settings.OLLAMA_HOST = server.host
    yield three_runs
    server.stop()


@pytest.mark.parametrize(
    ("url", "name", "pages"),
    [
        ("/runs/?page=999", "page", 1),
        ("/api/runs/?page=999", "page", 1),
        (f"{RUN}?page=999", "page", 1),
        (f"/api{RUN}?page=999", "page", 1),
        ("/prompt-sets/small/?page=999", "page", 1),
        ("/backends/?models_page=999", "models_page", 1),
        ("/api/backends/?models_page=999", "models_page", 1),
    ],
)
def test_a_page_past_the_last_is_a_bad_query_on_every_list(client, lists, url, name, pages):
    response = client.get(url)
    assert response.status_code == 400
    assert f"{name} must be between 1 and {pages}, not 999." in response.content.decode()


def test_the_last_page_of_every_list_answers(client, lists):
    for url in ("/runs/?page=1", f"/api{RUN}?page=1", "/prompt-sets/small/?page=1"):
        assert client.get(url).status_code == 200, url
    servers = json.loads(client.get("/api/backends/?models_page=1").content)["backends"]
    assert any(b["models"] for b in servers)
    assert all(b["models_page"] == 1 for b in servers)


def test_the_run_json_pages_its_checkpoints_as_the_page_does(client, lists, monkeypatch):
    monkeypatch.setattr("tuner_site.views.runs.CHECKPOINTS_PER_PAGE", 2)
    first = json.loads(client.get(f"/api{RUN}").content)
    assert (first["checkpoints_total"], first["checkpoints_pages"]) == (5, 3)
    assert [c["name"] for c in first["checkpoints"]] == ["final_model", "checkpoint-25"]
    last = json.loads(client.get(f"/api{RUN}?page=3").content)
    assert len(last["checkpoints"]) == 1 and last["checkpoints_page"] == 3
    assert client.get(f"/api{RUN}?page=4").status_code == 400
