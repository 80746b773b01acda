"""Sweeps end to end: a run's checkpoints served one after another on a loopback Ollama or vLLM
(fake servers speaking their APIs), each evaluated by the real upstream Evaluator in a real
worker process, the temporary models removed after."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import pytest

from sampledata import runs as wb
from tuner_site.models import EvaluationJob, Sweep

from .evaluator_ws import Worker, wait_for
from .fake_servers import EVAL_TOOL, FakeServer, sha256_of

pytestmark = pytest.mark.django_db(transaction=True)

LLAMA = wb.BASE_MODELS[2]  # the run's base: a Llama, as the fake Ollama's nexus-tools-sft:q8
BASE = "nexus-tools-sft:q8"
TRAINER = "rtx3090_sft"
RUN = "20251101_100000"
# How many of the four "levels" cases each checkpoint's adapter answers right.
STRENGTH = {
    "checkpoint-100": 1,
    "checkpoint-200": 4,
    "checkpoint-300": 2,
    "checkpoint-400": 1,
    "checkpoint-500": 0,
    "final_model": 3,
}


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_user("ada", password="pw-ada-12345", is_staff=True)
    client.force_login(user)
    return user


@pytest.fixture
def run_dir(eval_workspace: Path) -> Path:
    """A finished SFT run saved every 100 steps (checkpoint-300 has the lowest eval_loss), each
    checkpoint's adapter a file of its own, and a prompt set of four cases of rising level."""
    folder = wb.make_run(
        eval_workspace,
        "sft",
        datetime(2025, 11, 1, 10),
        max_steps=500,
        save_every=100,
        eval_every=100,
        base_model=LLAMA,
        seed=1,
    )
    for name in STRENGTH:
        found = next(folder.rglob(name))
        header = json.dumps({"__metadata__": {"checkpoint": name}}).encode()
        (found / "adapter_model.safetensors").write_bytes(
            len(header).to_bytes(8, "little") + header
        )
    cases = [
        {
            "id": f"case_{i}",
            "question": f"Create the folder Projects/{i}; answer right level {i}.",
            "tags": ["create"],
            "expected_tools": [EVAL_TOOL],
        }
        for i in range(1, 5)
    ]
    prompts = eval_workspace / "Evaluator" / "prompts" / "levels.json"
    prompts.write_text(json.dumps(cases))
    return folder


def adapter(folder: Path, checkpoint: str) -> Path:
    return next(folder.rglob(checkpoint)) / "adapter_model.safetensors"


def strengths(server: FakeServer, folder: Path) -> None:
    server.strength = {sha256_of(adapter(folder, n)): s for n, s in STRENGTH.items()}


@pytest.fixture
def ollama(settings):
    server = FakeServer("ollama").start()
    settings.OLLAMA_HOST = server.host
    # Deadlines are not under test here (test_backends has them): the form asks this server in
    # the test's own process, which a loaded machine can keep past the default 1.5 s.
    settings.TUNER_BACKEND_TIMEOUT = 10.0
    yield server
    server.gate = None
    server.stop()


@pytest.fixture
def vllm(settings):
    server = FakeServer("vllm").start()
    settings.TUNER_OPENAI_BACKENDS = f"vllm={server.url}"
    # Deadlines are not under test here (test_backends has them): the form asks this server in
    # the test's own process, which a loaded machine can keep past the default 1.5 s.
    settings.TUNER_BACKEND_TIMEOUT = 10.0
    yield server
    server.gate = None
    server.stop()


def start(client, **fields) -> dict:
    response = client.post(
        f"/api/runs/{TRAINER}/{RUN}/sweeps/",
        json.dumps({"backend": "ollama", "base": BASE, "prompt_set": "levels"} | fields),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def sweep(client, pk: int) -> dict:
    return client.get(f"/api/sweeps/{pk}/").json()


def logs(*workers: Worker):
    return lambda: "\n".join(w.output() for w in workers)


def first_evaluating(client, run_dir: Path, ollama, workers) -> tuple[dict, Worker]:
    """A sweep of checkpoint-200 and -300 whose first evaluation has started and waits for
    the test to let each case through (`ollama.gate`)."""
    strengths(ollama, run_dir)
    ollama.gate = threading.Semaphore(0)
    made = start(client, checkpoints=["checkpoint-200", "checkpoint-300"])
    worker = workers()
    wait_for(
        lambda: sweep(client, made["id"])["checkpoints"][0]["total"] == 4,
        "the first evaluation to start",
        logs=logs(worker),
    )
    return made, worker


def rows(data: dict) -> dict[str, tuple]:
    return {c["checkpoint"]: (c["status"], c["passed"], c["total"]) for c in data["checkpoints"]}


def test_a_sweep_serves_each_checkpoint_and_finds_the_one_that_passes_most(
    client, staff, run_dir, ollama, workers
):
    strengths(ollama, run_dir)
    listed = client.get(f"/api/runs/{TRAINER}/{RUN}/").json()["checkpoints"]
    best = [c["name"] for c in listed if c["best"]]
    assert best == ["checkpoint-300"]  # the lowest eval_loss
    made = start(client)
    # The default: the best, the newest, the final model and the others, in step order.
    assert [c["checkpoint"] for c in made["checkpoints"]] == list(STRENGTH)
    assert {c["status"] for c in made["checkpoints"]} == {"queued"}
    assert made["status"] == "queued" and made["warnings"] == []
    assert made["url"] == f"/sweeps/{made['id']}/"
    worker = workers()
    wait_for(
        lambda: sweep(client, made["id"])["status"] == "succeeded",
        "the sweep to finish",
        timeout=120,
        logs=logs(worker),
    )
    # The last model goes right after its verdict, and the sweep says so.
    wait_for(
        lambda: {c["served"] for c in sweep(client, made["id"])["checkpoints"]} == {"removed"},
        "every model to be removed",
        logs=logs(worker),
    )
    done = sweep(client, made["id"])
    assert rows(done) == {name: ("done", s, 4) for name, s in STRENGTH.items()}
    assert (done["done"], done["total"]) == (6, 6)
    # Each under its own name, from its own adapter's digest, and removed after.
    by_name = {c["checkpoint"]: c for c in done["checkpoints"]}
    assert by_name["checkpoint-200"]["model"] == f"tuner-{RUN}-ckpt200:latest"
    assert by_name["final_model"]["model"] == f"tuner-{RUN}-final:latest"
    for name, row in by_name.items():
        assert row["adapter_digest"] == sha256_of(adapter(run_dir, name))
    creates = [r[2] for r in ollama.requests if r[1] == "/api/create"]
    assert [c["from"] for c in creates] == [BASE] * 6
    assert not ollama.created and ollama.blobs  # no temporary model left behind
    # Every result is the Evaluator's own file, listed like any other.
    listed = {e["name"]: e for e in client.get("/api/evaluations/").json()["evaluations"]}
    result = by_name["checkpoint-200"]["result"]
    assert listed[result]["model"] == f"tuner-{RUN}-ckpt200:latest"
    assert listed[result]["pass_rate"] == 1.0
    assert EvaluationJob.objects.filter(sweep_id=made["id"], status="succeeded").count() == 6
    # The run's JSON gives each checkpoint its result, with the pass rate's interval.
    rows_json = client.get(f"/api/runs/{TRAINER}/{RUN}/").json()["checkpoints"]
    evaluations = {c["name"]: c["evaluations"] for c in rows_json}
    ((top,),) = [evaluations["checkpoint-200"]]
    assert (top["prompt_set"], top["passed"], top["total"], top["pass_rate"]) == (
        "levels",
        4,
        4,
        1.0,
    )
    assert (round(top["low"], 2), top["high"], top["result"]) == (0.51, 1.0, result)
    assert top["url"] == f"/evaluations/{result}/"
    assert [e["passed"] for e in evaluations["checkpoint-300"]] == [2]
    # The run page's checkpoint table has a column for the prompt set, linking each result.
    run_page = client.get(f"/runs/{TRAINER}/{RUN}/").content.decode()
    assert 'levels <span class="muted small">eval</span>' in run_page
    assert (
        f'<a href="/evaluations/{result}/" data-eval="levels">4/4 · 100 % (51–100)</a>' in run_page
    )
    assert ">2/4 · 50 % (15–85)</a>" in run_page
    page = client.get(made["url"]).content.decode()
    assert f'href="/evaluations/{result}/"' in page and ">4/4</td>" in page
    assert f'href="/runs/{TRAINER}/{RUN}/checkpoint-200/"' in page
    # The sweep's own results rank the run: checkpoint-200, not the lowest eval_loss.
    detail = client.get(f"/api/runs/{TRAINER}/{RUN}/").json()
    assert (detail["rank"]["rule"], detail["best_checkpoint"]["name"]) == (
        "eval:levels",
        "checkpoint-200",
    )
    assert detail["rank"]["training_best"] == "checkpoint-300"
    assert detail["rank"]["verdict"].startswith(
        "The two rules disagree: checkpoint-200 passes 4/4 on levels, checkpoint-300 "
        "(lowest eval_loss) 2/4"
    )
    # The next sweep's form calls the same checkpoint the best, as the run page does.
    form = client.get(f"/runs/{TRAINER}/{RUN}/sweeps/new/").content.decode()
    assert 'value="checkpoint-200" checked> checkpoint-200 <span class="muted small">best' in form
    assert '> checkpoint-300 <span class="muted small">best' not in form


def test_cancel_mid_sweep_stops_the_evaluation_and_removes_the_model(
    client, staff, run_dir, ollama, workers
):
    strengths(ollama, run_dir)
    ollama.gate = threading.Semaphore(0)
    made = start(client, checkpoints=["checkpoint-100", "checkpoint-200", "checkpoint-300"])
    worker = workers()
    wait_for(
        lambda: sweep(client, made["id"])["checkpoints"][0]["total"] == 4,
        "the first checkpoint's evaluation to start",
        logs=logs(worker),
    )
    running = sweep(client, made["id"])
    assert running["status"] == "running"
    assert rows(running)["checkpoint-100"][0] == "evaluating"
    assert list(ollama.created) == [f"tuner-{RUN}-ckpt100:latest"]
    page = client.get(f"/sweeps/{made['id']}/").content.decode()
    assert 'hx-trigger="every' in page and ">Cancel</button>" in page
    row = page[page.index('data-checkpoint="checkpoint-100"') :].split("</tr>")[0]
    assert ">evaluating</span>" in row and '<span class="muted small">0/4</span>' in row, row
    assert page.count(">queued</span>") == 2
    response = client.post(f"/api/sweeps/{made['id']}/cancel/")
    assert response.status_code == 200, response.content
    wait_for(
        lambda: sweep(client, made["id"])["status"] == "cancelled",
        "the sweep to be cancelled",
        logs=logs(worker),
    )
    assert {c["status"] for c in sweep(client, made["id"])["checkpoints"]} == {"cancelled"}
    wait_for(lambda: not ollama.created, "the temporary model to be removed", logs=logs(worker))
    page = client.get(f"/sweeps/{made['id']}/").content.decode()
    assert "hx-trigger" not in page and ">Cancel</button>" not in page
    assert page.count(">cancelled</span>") == 4  # the sweep's badge and each checkpoint's
    assert [r[2]["model"] for r in ollama.requests if r[1] == "/api/create"] == [
        f"tuner-{RUN}-ckpt100:latest"
    ]
    again = client.post(f"/api/sweeps/{made['id']}/cancel/")
    assert again.status_code == 409 and "nothing to cancel" in again.json()["error"]


def test_a_server_that_dies_mid_sweep_fails_its_checkpoints_with_why(
    client, staff, run_dir, ollama, workers
):
    made, worker = first_evaluating(client, run_dir, ollama, workers)
    ollama.stop()  # the server goes away while it holds the first checkpoint's model
    ollama.gate.release(8)
    wait_for(
        lambda: sweep(client, made["id"])["status"] == "failed",
        "the sweep to end",
        timeout=90,
        logs=logs(worker),
    )
    first, second = sweep(client, made["id"])["checkpoints"]
    assert first["status"] == "failed" and "no answer from the server" in first["error"]
    assert first["served"].startswith("not removed: nothing answers")
    assert second["status"] == "failed"
    assert second["error"].startswith("Could not serve checkpoint-300: nothing answers")


def test_vllm_loads_each_checkpoint_folder_and_unloads_it(client, staff, run_dir, vllm, workers):
    strengths(vllm, run_dir)
    made = start(client, backend="vllm", base="", checkpoints="checkpoint-200,checkpoint-300")
    worker = workers()
    wait_for(
        lambda: sweep(client, made["id"])["status"] == "succeeded",
        "the sweep to finish",
        timeout=90,
        logs=logs(worker),
    )
    assert rows(sweep(client, made["id"])) == {
        "checkpoint-200": ("done", 4, 4),
        "checkpoint-300": ("done", 2, 4),
    }
    loads = [r[2] for r in vllm.requests if r[1] == "/v1/load_lora_adapter"]
    trial, *loads = loads  # the form's, before anything started
    assert trial["lora_name"].startswith("tuner-dashboard-trial-")
    assert [Path(r["lora_path"]) for r in loads] == [
        adapter(run_dir, n).parent for n in ("checkpoint-200", "checkpoint-300")
    ]
    # The last model goes right after its verdict.
    wait_for(lambda: not vllm.loras, "the last adapter to be unloaded", logs=logs(worker))


def test_bad_sweeps_are_refused_naming_each_field(client, staff, run_dir, ollama, vllm):
    url = f"/api/runs/{TRAINER}/{RUN}/sweeps/"

    def refused(**fields) -> dict:
        body = {"backend": "ollama", "base": BASE, "prompt_set": "levels"} | fields
        response = client.post(url, json.dumps(body), content_type="application/json")
        assert response.status_code == 400, response.content
        return response.json()["fields"]

    assert "not 'absent:latest'" in refused(base="absent:latest")["base"][0]
    assert "base" in refused(base="")
    assert "not 'lmstudio'" in refused(backend="lmstudio")["backend"][0]
    fields = refused(checkpoints=["checkpoint-200", "checkpoint-999"], prompt_set="nope")
    assert "checkpoint-999 is not a checkpoint of this run" in fields["checkpoints"][0]
    assert "prompt_set" in fields
    assert "keep" in refused(keep="maybe")
    vllm.runtime_lora = False
    problem = refused(backend="vllm")["backend"][0]
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True" in problem
    assert not EvaluationJob.objects.exists()
    # A base of another family is a warning, not a refusal.
    made = start(client, base="gemma3:latest", checkpoints=["checkpoint-200"])
    assert made["warnings"] and "gemma" in made["warnings"][0]
    client.post(f"/api/sweeps/{made['id']}/cancel/")
    assert sweep(client, made["id"])["status"] == "cancelled"
    listed = client.get(url).json()["sweeps"]
    assert [(s["id"], s["status"]) for s in listed] == [(made["id"], "cancelled")]
    assert client.get(f"/api/runs/{TRAINER}/nope/sweeps/").status_code == 404
    client.logout()
    anonymous = client.post(url, json.dumps({"backend": "ollama"}), content_type="application/json")
    assert anonymous.status_code == 401
    assert client.get("/api/sweeps/999/").status_code == 404


def test_a_signed_out_visitor_is_offered_the_form_and_asked_to_sign_in(client, run_dir, ollama):
    """As /backends/' Evaluate buttons: a newcomer finds the feature, then the way to a login."""
    page = client.get(f"/runs/{TRAINER}/{RUN}/").content.decode()
    form_url = f"/runs/{TRAINER}/{RUN}/sweeps/new/"
    assert f'href="{form_url}" data-sweep-link>Evaluate checkpoints</a>' in page
    form = client.get(form_url).content.decode()
    assert "data-denied" in form and "<form id" not in form
    assert f">{TRAINER} / {RUN}</a> / evaluate checkpoints</nav>" in form  # as a checkpoint's
    assert f'href="/accounts/login/?next={quote(form_url, safe="")}">Sign in</a>' in form


def test_only_staff_get_the_form_and_the_link(client, django_user_model, run_dir, ollama):
    form_url = f"/runs/{TRAINER}/{RUN}/sweeps/new/"
    viewer = django_user_model.objects.create_user("bo", password="pw-bo-123456")
    client.force_login(viewer)
    assert "data-sweep-link" not in client.get(f"/runs/{TRAINER}/{RUN}/").content.decode()
    page = client.get(form_url).content.decode()
    assert "data-denied" in page and "only staff" in page and "<form id" not in page
    assert client.post(form_url, {"backend": "ollama"}).status_code == 403
    viewer.is_staff = True
    viewer.save()
    assert "data-sweep-link" in client.get(f"/runs/{TRAINER}/{RUN}/").content.decode()
    # Each checkpoint is an evaluation job: the form says the limits every job runs under.
    assert "data-limits" in client.get(form_url).content.decode()
    refused = client.post(form_url, {"backend": "ollama", "base": "absent", "prompt_set": "levels"})
    assert refused.status_code == 400
    assert "not &#x27;absent&#x27;" in refused.content.decode()
    assert not EvaluationJob.objects.exists()
    assert client.get(f"/runs/{TRAINER}/nope/sweeps/new/").status_code == 404


def test_the_pass_rate_interval_is_wilsons():
    from discovery.evaluations import wilson

    # The example: 36/44 · 82 % (68–90).
    assert [round(x * 100) for x in wilson(36, 44)] == [68, 90]
    low, high = wilson(0, 4)
    assert low == 0.0 and round(high, 2) == 0.49
    assert wilson(0, 0) == (0.0, 1.0)


def test_a_worker_that_dies_mid_sweep_leaves_no_model_behind(
    client, staff, run_dir, ollama, workers
):
    made, worker = first_evaluating(client, run_dir, ollama, workers)
    assert list(ollama.created) == [f"tuner-{RUN}-ckpt200:latest"]
    worker.kill()  # no clean-up of its own: the next page to look finds it gone
    first = sweep(client, made["id"])["checkpoints"][0]
    assert first["status"] == "failed" and "stopped while it ran" in first["error"]
    assert first["served"] == "removed" and not ollama.created


def test_served_models_and_their_results_link_exactly_to_their_checkpoints(
    client, staff, run_dir, ollama, vllm, workers
):
    strengths(ollama, run_dir)
    strengths(vllm, run_dir)
    kept = start(client, checkpoints=["checkpoint-200"], keep=True)
    gone = start(client, checkpoints=["checkpoint-300"])
    loaded = start(client, backend="vllm", base="", checkpoints=["checkpoint-200"], keep=True)
    worker = workers()
    for made in (kept, gone, loaded):
        wait_for(
            lambda made=made: sweep(client, made["id"])["status"] == "succeeded",
            "the sweeps to finish",
            timeout=120,
            logs=logs(worker),
        )
    wait_for(lambda: len(ollama.created) == 1, "checkpoint-300's model to be removed")
    # Someone makes a model of the dashboard's name for checkpoint-300 from another adapter:
    # a name alone says nothing of where a model came from.
    other = run_dir / "elsewhere.safetensors"
    other.write_bytes(b"not any checkpoint's adapter")
    digest = sha256_of(other)
    ollama.blobs[digest] = other.read_bytes()
    ollama.created[f"tuner-{RUN}-ckpt300:latest"] = {
        "model": f"tuner-{RUN}-ckpt300:latest",
        "from": BASE,
        "adapters": {"adapter_model.safetensors": digest},
    }
    results = {
        made["checkpoints"][0]["checkpoint"] + "@" + made["backend"]: sweep(client, made["id"])[
            "checkpoints"
        ][0]["result"]
        for made in (kept, gone, loaded)
    }

    def rows() -> dict[str, dict]:
        listed = client.get("/api/models/").json()["models"]
        return {name: m for m in listed for name in m["names"]}

    wait_for(
        lambda: f"tuner-{RUN}-ckpt300:latest" in rows() and f"tuner-{RUN}-ckpt200" in rows(),
        "the servers' lists to show the models",
        logs=logs(worker),
    )
    found = rows()
    # The kept Ollama model, the vLLM adapter and both results of checkpoint-200: one model,
    # from that run and checkpoint, exactly.
    row = found[f"tuner-{RUN}-ckpt200:latest"]
    assert row is found[f"tuner-{RUN}-ckpt200"]
    assert (row["run"], row["checkpoint"], row["link"]) == (
        f"{TRAINER}/{RUN}",
        "checkpoint-200",
        "exact",
    )
    assert {(s["backend"], s["link"], s["checkpoint"]) for s in row["served"]} == {
        ("ollama", "exact", "checkpoint-200"),
        ("vllm", "exact", "checkpoint-200"),
    }
    assert all("the dashboard served checkpoint-200's adapter" in s["how"] for s in row["served"])
    assert {e["name"]: e["link"] for e in row["evaluations"]} == {
        results["checkpoint-200@ollama"]: "exact",
        results["checkpoint-200@vllm"]: "exact",
    }
    # The removed model's result still comes from checkpoint-300; the look-alike does not.
    (ckpt300,) = [
        m
        for m in client.get("/api/models/").json()["models"]
        if m["checkpoint"] == "checkpoint-300"
    ]
    assert ckpt300["link"] == "exact" and ckpt300["served"] == []
    assert [(e["name"], e["link"], e["checkpoint"]) for e in ckpt300["evaluations"]] == [
        (results["checkpoint-300@ollama"], "exact", "checkpoint-300")
    ]
    impostor = found[f"tuner-{RUN}-ckpt300:latest"]
    assert impostor is not ckpt300 and impostor["link"] is None
    # The result's own page and JSON say where it came from.
    result_page = client.get(f"/evaluations/{results['checkpoint-300@ollama']}/").content.decode()
    source = result_page[result_page.index("From run") :].split("</dd>")[0]
    assert f'href="/runs/{TRAINER}/{RUN}/checkpoint-300/">checkpoint-300</a>' in source
    assert "a sweep evaluated checkpoint-300&#x27;s adapter" in source and ">exact<" in source
    # The page says the same, and a restart (a fresh read of the workspace) keeps it.
    from discovery import caches

    caches.clear_all()
    page = client.get("/models/").content.decode()
    shown = page[page.index(f'data-model="{row["id"]}"') :].split("</tr>")[0]
    assert ">checkpoint-200</a>" in shown and "link-exact" in shown
    gone_row = page[page.index(f'data-model="{ckpt300["id"]}"') :].split("</tr>")[0]
    assert ">checkpoint-300</a>" in gone_row and "link-exact" in gone_row


def test_a_vllm_that_cannot_load_the_adapter_says_so_before_anything_starts(
    client, staff, run_dir, vllm
):
    url = f"/api/runs/{TRAINER}/{RUN}/sweeps/"
    form_url = f"/runs/{TRAINER}/{RUN}/sweeps/new/"
    body = {"backend": "vllm", "prompt_set": "levels", "checkpoints": ["checkpoint-200"]}
    # Started with vLLM's default --max-lora-rank (16) for the run's rank-32 adapters: a 400.
    vllm.max_lora_rank = 16
    response = client.post(url, json.dumps(body), content_type="application/json")
    assert response.status_code == 400, response.content
    (problem,) = response.json()["fields"]["backend"]
    assert problem.startswith("vllm could not load checkpoint-200: vLLM answered HTTP 400")
    assert "LoRA rank 32 is greater than max_lora_rank 16" in problem
    assert "--max-lora-rank" in problem
    # On another machine, where the checkpoint folder is not: its own 404, in the form too.
    vllm.max_lora_rank, vllm.sees_files = 64, False
    page = client.post(form_url, body | {"checkpoints": "checkpoint-200"})
    assert page.status_code == 400
    text = page.content.decode()
    assert "No adapter found for" in text and "at the same path" in text
    assert not EvaluationJob.objects.exists()
    # Nothing was left loaded by the trial, and what was tried had a name of its own.
    loads = [r[2]["lora_name"] for r in vllm.requests if r[1] == "/v1/load_lora_adapter"]
    assert loads and all(n.startswith("tuner-dashboard-trial-") for n in loads)
    assert not vllm.loras
    vllm.sees_files = True
    made = start(client, **body)
    assert [c["checkpoint"] for c in made["checkpoints"]] == ["checkpoint-200"]
    assert not vllm.loras  # the trial unloaded what it loaded


def test_a_base_of_another_family_is_a_warning_in_the_form_and_on_the_sweep_page(
    client, staff, run_dir, ollama
):
    form_url = f"/runs/{TRAINER}/{RUN}/sweeps/new/"
    # As the form asks while a base is chosen (htmx): the warning only, nothing started.
    asked = client.get(
        form_url,
        {"backend": "ollama", "base": "gemma3:latest", "checkpoints": ["checkpoint-200"]},
        headers={"HX-Request": "true", "HX-Target": "sweep-warnings"},
    )
    fragment = asked.content.decode()
    assert fragment.startswith('<div id="sweep-warnings"') and "<form" not in fragment
    assert "gemma3:latest looks like a gemma model" in fragment and "llama" in fragment
    assert "can still start" in fragment
    same = client.get(
        form_url,
        {"backend": "ollama", "base": BASE},
        headers={"HX-Request": "true", "HX-Target": "sweep-warnings"},
    )
    assert "data-warning" not in same.content.decode()
    page = client.get(form_url).content.decode()
    assert 'hx-target="#sweep-warnings"' in page and 'id="sweep-warnings"' in page
    assert not EvaluationJob.objects.exists()
    # Posted anyway, it starts, and its page keeps saying so.
    posted = client.post(
        form_url,
        {"backend": "ollama", "base": "gemma3:latest", "prompt_set": "levels"}
        | {"checkpoints": "checkpoint-200"},
    )
    assert posted.status_code == 302, posted.content
    made = client.get(f"/api/sweeps/{posted.url.strip('/').split('/')[-1]}/").json()
    assert len(made["warnings"]) == 1 and "gemma" in made["warnings"][0]
    sweep_page = client.get(posted.url).content.decode()
    assert "data-warning>gemma3:latest looks like a gemma model" in sweep_page
    client.post(f"/api/sweeps/{made['id']}/cancel/")


def test_the_run_page_follows_a_sweep_live_and_cancels_it_keeping_what_finished(
    client, staff, run_dir, ollama, workers
):
    strengths(ollama, run_dir)
    ollama.gate = threading.Semaphore(4)  # checkpoint-100's four cases, then it waits
    made = start(client, checkpoints=["checkpoint-100", "checkpoint-200", "checkpoint-300"])
    run_url = f"/runs/{TRAINER}/{RUN}/"
    poll = {"HX-Request": "true", "HX-Target": "run-sweeps"}
    page = client.get(run_url).content.decode()
    panel = page[page.index('id="run-sweeps"') :].split("</section>")[0]
    assert "Evaluating checkpoints" in panel and 'hx-trigger="every' in panel
    assert panel.count(">queued</span>") == 4  # the sweep and each checkpoint
    worker = workers()
    wait_for(
        lambda: sweep(client, made["id"])["checkpoints"][1]["total"] == 4,
        "checkpoint-200's evaluation to start",
        logs=logs(worker),
    )
    # The page's own poll: the panel alone, checkpoint by checkpoint.
    fragment = client.get(run_url, headers=poll).content.decode()
    assert fragment.lstrip().startswith("<section") and 'id="checkpoints"' not in fragment
    rows = {r.split('"')[0]: r for r in fragment.split('data-checkpoint="')[1:]}
    assert ">done</span>" in rows["checkpoint-100"] and ">1/4</a>" in rows["checkpoint-100"]
    assert ">evaluating</span>" in rows["checkpoint-200"] and "0/4" in rows["checkpoint-200"]
    assert ">queued</span>" in rows["checkpoint-300"]
    assert "1 of 3 checkpoints done" in fragment and 'hx-trigger="every' in fragment
    # Cancel from the run page: the current evaluation stops, its model goes, the queue ends.
    cancelled = client.post(f"/sweeps/{made['id']}/cancel/", headers=poll)
    assert cancelled.status_code == 200
    assert 'id="run-sweeps"' in cancelled.content.decode()
    ollama.gate.release(8)
    wait_for(
        lambda: sweep(client, made["id"])["status"] == "cancelled",
        "the sweep to be cancelled",
        logs=logs(worker),
    )
    wait_for(lambda: not ollama.created, "the temporary model to be removed", logs=logs(worker))
    statuses = [c["status"] for c in sweep(client, made["id"])["checkpoints"]]
    assert statuses == ["done", "cancelled", "cancelled"]
    # The last poll stops polling and asks the page's live part again, once.
    last = client.get(run_url, headers=poll | {"HX-Current-URL": f"http://testserver{run_url}"})
    text = last.content.decode()
    assert 'hx-trigger="every' not in text and 'id="run-sweeps-ended"' in text
    assert f'hx-get="{run_url}" hx-trigger="load" hx-target="#run-live"' in text
    page = client.get(run_url).content.decode()
    assert "Last sweep" in page and "run-sweeps-ended" not in page
    # Only what was evaluated counts as done, on the run's page and the sweep's.
    assert "1 of 3 checkpoints done, 2 cancelled" in page
    sweep_page = client.get(made["url"]).content.decode()
    assert "1 of 3 checkpoints done, 2 cancelled" in sweep_page
    assert f">{TRAINER} / {RUN}</a> / sweep {made['id']}</nav>" in sweep_page
    # What finished keeps its result: checkpoint-100's column in the checkpoint table.
    assert ">1/4 · 25 % (5–70)</a>" in page


def test_a_sweep_ends_once_its_last_model_is_taken_down(client, sweep_id):
    """A script that waits for `succeeded` finds no temporary model left on the server; a
    worker killed between the job's end and the removal leaves no sweep running for ever."""
    from datetime import timedelta

    from django.utils import timezone

    def status() -> str:
        return client.get(f"/api/sweeps/{sweep_id}/").json()["status"]

    jobs = EvaluationJob.objects.filter(sweep_id=sweep_id)
    jobs.update(status=EvaluationJob.Status.SUCCEEDED, serving="served", finished_at=timezone.now())
    assert status() == "running"
    jobs.update(serving="removed")
    assert status() == "succeeded"
    jobs.update(serving="served", finished_at=timezone.now() - timedelta(minutes=5))
    assert status() == "succeeded"
    Sweep.objects.filter(pk=sweep_id).update(keep=True)
    jobs.update(serving="served", finished_at=timezone.now())
    assert status() == "succeeded"


def test_the_sweep_form_says_which_servers_it_needs_when_none_is_there(
    client, staff, run_dir, settings
):
    settings.OLLAMA_HOST, settings.LMSTUDIO_HOST, settings.TUNER_OPENAI_BACKENDS = "", "", ""
    url = f"/runs/{TRAINER}/{RUN}/sweeps/new/"
    page = client.get(url).content.decode()
    assert "No server that can be given adapters is configured: set <code>OLLAMA_HOST</code>" in (
        page
    )
    settings.OLLAMA_HOST = "127.0.0.1:9"  # configured, not answering
    page = client.get(url).content.decode()
    assert "No such server answers right now:" in page and "<strong>ollama</strong>" in page
    assert '<form id="sweep-form"' not in page
