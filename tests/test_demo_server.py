"""The demo's inference server (sampledata/inference.py): Ollama's API over the demo's GGUF
files, read by the dashboard's own Ollama reader and answered for the real Evaluator."""

from __future__ import annotations

import hashlib
import html
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from discovery.backends import Backend, probe
from sampledata.demo import build_demo
from sampledata.evaluator import write_prompt_sets
from sampledata.inference import VERSION, DemoOllama

from .evaluator_ws import add_evaluator

KTO = "hf.co/professorsynapse/nexus-tools-kto-GGUF:Q4_K_M"
SFT = "hf.co/professorsynapse/nexus-tools-sft-GGUF:Q4_K_M"


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoOllama]:
    root = build_demo((tmp_path / "demo").resolve())
    server = DemoOllama(root, tmp_path / "ollama", reply_seconds=0).start()
    yield server
    server.stop()


def test_the_dashboards_reader_sees_the_demo_models_made_from_the_demos_gguf_files(demo):
    status = probe(Backend("ollama", "ollama", demo.url), timeout=5)
    assert status.available and status.version == VERSION and "demo" in VERSION
    models = {m.id: m for m in status.models}
    assert [m.id for m in status.models if m.loaded] == [KTO]
    on_disk = {
        hashlib.sha256(p.read_bytes()).hexdigest(): p
        for p in demo.root.glob("Trainers/**/gguf/*.gguf")
    }
    # Every model but the library one is made from a GGUF file a demo run published.
    for name, m in models.items():
        made_from = [on_disk.get(b) for b in m.blobs]
        assert any(made_from) == (name != "mistral:7b-instruct"), name
    assert on_disk[models[KTO].blobs[0]].name == "nexus-tools-kto-Q4_K_M.gguf"
    adapter = on_disk[models["nexus-tools-kto:checkpoint-275"].blobs[1]]
    assert adapter.parent.parent.parent.name == "checkpoints"  # an upload of a checkpoint


def test_it_answers_as_ollama_does_to_what_it_does_not_have(demo):
    missing = httpx.post(demo.url + "/api/chat", json={"model": "nope", "messages": []})
    assert missing.status_code == 404 and missing.json() == {"error": "model 'nope' not found"}
    bad = httpx.post(demo.url + "/api/show", content=b"{not json")
    assert bad.status_code == 400 and "error" in bad.json()
    assert httpx.get(demo.url + "/api/pull").status_code == 404
    assert httpx.get(demo.url + "/").text.startswith("Ollama is running")
    # Ollama streams by default: a line with the message, then one with the totals.
    lines = httpx.post(
        demo.url + "/api/chat", json={"model": SFT, "messages": [{"role": "user", "content": "hi"}]}
    ).text.splitlines()
    first, last = (json.loads(line) for line in lines)
    assert (first["done"], last["done"], last["done_reason"]) == (False, True, "stop")
    assert first["message"]["role"] == "assistant"
    # A model asked for is loaded, the oldest one unloaded beyond two.
    loaded = [m["name"] for m in httpx.get(demo.url + "/api/ps").json()["models"]]
    assert loaded == [SFT, KTO]


def test_the_real_evaluator_scores_the_demo_models_and_the_later_training_does_better(
    demo, tmp_path
):
    add_evaluator(demo.root)  # skips without ../shared/upstream
    write_prompt_sets(demo.root)  # the demo's own, as `make run` writes them again
    scores = {}
    for model in (KTO, SFT):
        out = tmp_path / f"{model.rsplit('/', 1)[-1]}.json"
        subprocess.run(
            [sys.executable, "-m", "Evaluator.cli", "--backend", "ollama", "--model", model]
            + ["--prompt-set", "Evaluator/prompts/tool_prompts.json", "--host", "127.0.0.1"]
            + ["--port", str(demo.port), "--output", str(out)],
            cwd=demo.root,
            capture_output=True,
            timeout=120,
        )
        summary = json.loads(out.read_text())["summary"]
        assert summary["request_errors"] == 0 and 0 < summary["passed"] < summary["total"]
        scores[model] = summary["passed"]
    assert scores[KTO] > scores[SFT]


@pytest.mark.django_db
def test_the_demos_evaluation_page_says_what_to_add_and_where(admin_client, settings, tmp_path):
    root = build_demo((tmp_path / "demo").resolve())
    settings.TUNER_WORKSPACE = settings.TUNER_DEMO_WORKSPACE = root
    # Staff see the folder itself (others its name only).
    page = html.unescape(admin_client.get("/evaluations/new/").content.decode())
    assert (
        "The demo ships no Evaluator: to evaluate its server's models, copy the training "
        "project's <code>Evaluator/</code> and <code>tools/</code> folders into "
        f"<code>{root}</code> (a new <code>make run</code> keeps them; README.md, "
        "“Evaluate from the dashboard”)."
    ) in page


def test_a_sweep_can_serve_the_demos_checkpoints_on_it(demo):
    from discovery import serving
    from discovery.runs import Workspace, detail, list_runs

    ckpts = next(
        found
        for r in list_runs(Workspace(demo.root))
        if len(
            found := [
                c
                for c in detail(r).checkpoints
                if not c.is_final and serving.servable(c, demo.root).adapter
            ][:2]
        )
        == 2
    )
    adapters = [serving.servable(c, demo.root).adapter for c in ckpts]
    base = next(m for m in demo.models if m.startswith("hf.co/"))
    served = [
        serving.serve("ollama", demo.url, a, f"tuner-demo-{c.step}", demo.root, base)
        for a, c in zip(adapters, ckpts, strict=True)
        if a is not None
    ]
    # Each checkpoint's adapter is its own file, so each model is its own, as Ollama lists it.
    listed = {m.id: m for m in probe(Backend("ollama", "ollama", demo.url), timeout=5).models}
    first, second = served
    assert first.weights_digest != second.weights_digest and first.digest != second.digest
    assert listed[first.model].digest == first.digest
    assert listed[first.model].blobs[1:] == first.blobs  # FROM the base, then the adapter
    question = {"role": "user", "content": "Case 1: make the folder"}
    answer = httpx.post(
        demo.url + "/api/chat",
        json={"model": first.model, "messages": [question], "stream": False},
    )
    assert answer.status_code == 200 and answer.json()["message"]["role"] == "assistant"
    with httpx.Client() as http, pytest.raises(serving.ServingError, match="does not exist"):
        serving.create(http, demo.url, "tuner-x", "absent:latest", {}, stream=False)
    assert all(serving.unserve(s) for s in served)
    left = {m.id for m in probe(Backend("ollama", "ollama", demo.url), timeout=5).models}
    assert not {s.model for s in served} & left


def test_make_run_starts_the_demo_server_where_it_was_last_time(tmp_path):
    """A job keeps its server's address: a job a stop put back in the queue must find the demo's
    server there after the restart, as it would a real Ollama."""
    import socket

    from tuner_site.management.commands.serve import start_on_last_port

    root = build_demo((tmp_path / "demo").resolve())
    remembered = tmp_path / "data" / "demo-ollama" / "port"
    first = start_on_last_port(DemoOllama(root, remembered.parent), remembered)
    port = first.port
    first.stop()
    again = start_on_last_port(DemoOllama(root, remembered.parent), remembered)
    assert again.port == port
    assert httpx.get(again.url + "/api/version", timeout=5).json()["version"] == VERSION
    again.stop()
    # Taken by another program meanwhile: a free port, remembered for next time.
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the last TIME_WAIT
        other.bind(("127.0.0.1", port))
        other.listen()
        moved = start_on_last_port(DemoOllama(root, remembered.parent), remembered)
        moved_port = moved.port
        moved.stop()
    assert moved_port != port
    assert remembered.read_text().strip() == str(moved_port)
