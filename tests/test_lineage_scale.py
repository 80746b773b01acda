"""Tens of thousands of served models: linking them to runs grows with their number, never with
its square, and the servers' page links only the models it shows.

Before, `/backends/` linked every model of every server and then scanned every model row for
each one: 10,000 models on each of three servers took more than 30 s.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import time
from pathlib import Path

import pytest

from discovery import lineage
from discovery.backends import Backend, BackendStatus
from discovery.evaluations import Evaluation
from discovery.modelinfo import ModelInfo
from discovery.runs import Workspace
from tuner_site.paging import MODEL_ROWS_PER_PAGE, MODELS_PER_PAGE

from . import fake_servers as fs

N_MODELS = 2_000


@pytest.mark.django_db
def test_the_servers_page_links_only_the_models_it_shows(
    client, settings, use_workspace, monkeypatch
):
    server = fs.FakeServer("ollama", "many")
    server.models = N_MODELS
    server.start()
    try:
        settings.OLLAMA_HOST, settings.LMSTUDIO_HOST = server.host, ""
        settings.TUNER_BACKEND_TIMEOUT = 2.0
        settings.TUNER_BACKEND_CACHE_SECONDS = 600
        assert client.get("/api/backends/").status_code == 200  # the servers' answer, cached
        linked: list[str] = []
        real = lineage.link_served

        def counting(model: ModelInfo, cat: lineage.Catalog) -> lineage.Link | None:
            linked.append(model.id)
            return real(model, cat)

        monkeypatch.setattr(lineage, "link_served", counting)
        for url in ("/backends/", "/backends/?models_page=3", "/api/backends/?models_page=2"):
            linked.clear()
            assert client.get(url).status_code == 200
            assert 0 < len(linked) <= MODELS_PER_PAGE, (url, len(linked))
        backend = json.loads(client.get("/api/backends/?models_page=2").content)["backends"][0]
        assert backend["available"], backend["error"]
        # Each served model names the model row it joins: the same id /models/ gives it.
        monkeypatch.setattr(lineage, "link_served", real)
        ids = {m["lineage"]["model_id"] for m in backend["models"]}
        listed = json.loads(client.get("/api/models/").content)
        assert listed["count"] == N_MODELS and listed["pages"] == N_MODELS // MODEL_ROWS_PER_PAGE
        every = {
            m["id"]
            for page in range(1, listed["pages"] + 1)
            for m in json.loads(client.get(f"/api/models/?page={page}").content)["models"]
        }
        assert len(every) == N_MODELS and ids <= every
        first = backend["models"][0]["lineage"]
        assert client.get(first["model_url"]).status_code == 200
        html = client.get("/models/?page=2").content.decode()
        assert f"Page 2 of {listed['pages']}" in html and 'href="?page=3"' in html
        assert html.count("<tr data-model=") == MODEL_ROWS_PER_PAGE
        for bad in (str(listed["pages"] + 1), "0", "two"):
            response = client.get(f"/api/models/?page={bad}")
            assert response.status_code == 400 and "page must be" in response.json()["error"]
    finally:
        server.stop()


def _statuses(n: int) -> list[BackendStatus]:
    """Three servers of `n` models each, as their clients read them."""
    found = []
    for kind, name in (("ollama", "{}:q4"), ("lmstudio", "model-{}"), ("openai", "org/model-{}")):
        models = tuple(
            ModelInfo(
                id=name.format(f"{i:05d}"),
                loaded=i % 10 == 0,
                blobs=() if kind == "ollama" else None,
                root=f"/models/m{i}.gguf" if kind == "openai" else None,
            )
            for i in range(n)
        )
        backend = Backend(kind, kind, f"http://127.0.0.1:{9000 + len(found)}")
        found.append(BackendStatus(backend, True, None, "1", 1.0, models, kind, time.time()))
    return found


def _evaluations(n: int) -> list[Evaluation]:
    """Results of one model in twenty, each served under its name."""
    return [
        Evaluation(
            f"run_{i:05d}", Path(f"run_{i:05d}.json"), f"{i:05d}:q4", "tools", None, 10, 5, 0, 0.5
        )
        for i in range(0, n, 20)
    ]


def _cpu_seconds(root: Path, n: int) -> float:
    """The least CPU time of three joins of 3 × n served models (the machine may be busy)."""
    statuses, evaluations = _statuses(n), _evaluations(n)
    ws = Workspace.at(root)
    best = float("inf")
    for _ in range(3):
        lineage.clear_cache()
        # The collector's full passes grow with every object alive, not with the join: left on,
        # they made a linear join read as 22x for 8x the models on a loaded machine.
        gc.collect()
        gc.disable()
        try:
            started = time.process_time()
            found = lineage.build(ws, statuses, evaluations)
            best = min(best, time.process_time() - started)
        finally:
            gc.enable()
        ids = {s.model_id for s in found.served}
        assert len(found.models) == len(ids) == 3 * n
    return best


def test_joining_served_models_grows_linearly_with_their_number(workspace):
    small, large = 250, 4_000  # sixteen times as many: linear is about 16x, quadratic 256x
    _cpu_seconds(workspace, 100)  # imports and caches of the first call are not counted
    ratio = _cpu_seconds(workspace, large) / _cpu_seconds(workspace, small)
    assert ratio < 48, f"{large} models per server took {ratio:.0f}x the time of {small}"


def test_the_join_is_reused_until_the_servers_models_or_the_uploads_change(workspace):
    ws = Workspace.at(workspace)
    first = lineage.build(ws, _statuses(50), _evaluations(50), max_age=60)
    # A refresh that brings the same models (a new answer, a new catalog of the same uploads).
    lineage._cached = None
    assert lineage.build(ws, _statuses(50), _evaluations(50), max_age=60) is first
    changed = _statuses(50)
    changed[0] = dataclasses.replace(changed[0], models=changed[0].models[1:])
    again = lineage.build(ws, changed, _evaluations(50), max_age=60)
    assert again is not first and len(again.served) == len(first.served) - 1
    assert lineage.build(ws, changed, _evaluations(50)) is not again  # max_age 0: never reused
