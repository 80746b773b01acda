"""Hostile input against sweeps and what they record: every field of the sweep API wrong in
every way, adapters a crashed save or a hand-made folder leaves, and a workspace record
(`.tuner/served.jsonl`) that is half-written, forged or not a file. Each is a 400 naming the
field or a note on the page, never a 500, and nothing outside the workspace is linked `exact`."""

from __future__ import annotations

import json
import os

import pytest

from tuner_site.models import EvaluationJob, Sweep

from . import test_sweeps
from .test_sweeps import BASE, RUN, TRAINER

# The sweep tests' own fixtures: a staff session, their run, a fake Ollama and vLLM.
staff, run_dir = test_sweeps.staff, test_sweeps.run_dir
ollama, vllm = test_sweeps.ollama, test_sweeps.vllm

pytestmark = pytest.mark.django_db(transaction=True)

URL = f"/api/runs/{TRAINER}/{RUN}/sweeps/"
GOOD = {"backend": "ollama", "base": BASE, "prompt_set": "levels"}


def post(client, body: object, content_type: str = "application/json"):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(URL, data, content_type=content_type)


def test_bodies_that_are_no_form_are_400s_that_say_so(client, staff, run_dir, ollama):
    nested = "[" * 100_000 + "]" * 100_000
    for body in (nested, '{"backend": ' + nested + "}", b"\xff\xfe\x00", "[1, 2]", '"x"'):
        response = post(client, body)
        assert response.status_code == 400, body[:20]
        assert "JSON" in response.json()["error"]
    for content_type in ("text/plain", "application/xml", "application/octet-stream"):
        response = post(client, json.dumps(GOOD), content_type)
        assert response.status_code == 400
        assert response.json()["error"].startswith("Send a JSON object"), content_type
        assert response.json()["error"].endswith(f"not {content_type}.")
    assert not Sweep.objects.exists()


def test_every_field_wrong_is_a_400_naming_it_and_short(client, staff, run_dir, ollama):
    def refused(**fields: object) -> dict[str, list[str]]:
        response = post(client, GOOD | fields)
        assert response.status_code == 400, response.content[:300]
        # A message people read: a list of 100,000 names is not repeated back whole.
        assert len(response.content) < 10_000
        return response.json()["fields"]

    many = [f"checkpoint-{i}" for i in range(100_000)]
    problem = refused(checkpoints=many)["checkpoints"][0]
    assert "checkpoint-0 is not a checkpoint of this run" in problem
    assert "and 99,985 more" in problem  # five of them are this run's
    assert "tags" in refused(tags=[f"t{i}" for i in range(50_000)])
    for bad in (["../../etc"], ["checkpoint-1/../.."], ["checkpoint-200\x00"], 200, {"a": 1}):
        assert "checkpoints" in refused(checkpoints=bad), bad
    fields = refused(limit=-1, temperature=1e309, seed=2**70)
    assert {"limit", "temperature", "seed"} <= set(fields)
    fields = refused(limit=[1, 2], temperature={"a": 1}, seed=True, keep=[True, False])
    assert {"limit", "temperature", "seed", "keep"} <= set(fields)
    assert "limit" in refused(limit=int("9" * 4000))
    assert "backend" in refused(backend="nope")
    assert not Sweep.objects.exists() and not EvaluationJob.objects.exists()


def test_adapters_left_half_written_or_linked_out_are_refused_before_a_sweep(
    client, staff, run_dir, ollama, tmp_path
):
    def folder(name: str):
        return next(run_dir.rglob(name))

    (folder("checkpoint-100") / "adapter_model.safetensors").write_bytes(b"")
    weights = folder("checkpoint-200") / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5])
    fifo = folder("checkpoint-300") / "adapter_model.safetensors"
    fifo.unlink()
    os.mkfifo(fifo)
    secret = tmp_path / "secret.safetensors"
    secret.write_bytes((folder("checkpoint-400") / "adapter_model.safetensors").read_bytes())
    linked = folder("checkpoint-400") / "adapter_model.safetensors"
    linked.unlink()
    linked.symlink_to(secret)
    expected = {
        "checkpoint-100": "empty (0 bytes)",
        "checkpoint-200": "not a whole safetensors file",
        "checkpoint-300": "not a regular file",
        "checkpoint-400": "links outside the workspace",
    }
    for name, why in expected.items():
        response = post(client, GOOD | {"checkpoints": [name]})
        assert response.status_code == 400, name
        assert f"{name} cannot be served: adapter_model.safetensors" in response.json()["error"]
        assert why in response.json()["error"]
    # The form lists them unticked, each with its reason; the default leaves them out.
    page = client.get(f"/runs/{TRAINER}/{RUN}/sweeps/new/").content.decode()
    assert all(why in page for why in expected.values())
    made = post(client, GOOD).json()
    assert [c["checkpoint"] for c in made["checkpoints"]] == ["checkpoint-500", "final_model"]
    assert not ollama.blobs


def test_a_forged_or_broken_record_of_what_was_served_links_nothing_and_is_said(
    client, run_dir, vllm, tmp_path
):
    from discovery import caches, serving
    from tuner_site import workspace

    root = workspace.current().root
    record = root / serving.RECORD
    record.parent.mkdir(exist_ok=True)
    ckpt = next(run_dir.rglob("checkpoint-200"))

    def line(**fields: str) -> str:
        return json.dumps(
            {
                "run": f"{TRAINER}/{RUN}",
                "checkpoint": "checkpoint-200",
                "kind": "vllm",
                "server": vllm.url,
                "model": "m",
                "weights_digest": "sha256:" + "a" * 64,
                "path": str(ckpt),
            }
            | fields
        )

    # What vLLM serves: adapters from outside the workspace and one a sweep really loaded.
    vllm.loras.update({"etc": "/etc", "passwd": "/etc", "ghost": str(ckpt), "real": str(ckpt)})
    record.write_text(
        "\n".join(
            [
                line(model="etc", checkpoint="../../etc/passwd", path="/etc"),
                line(model="passwd", path="/etc"),
                line(model="ghost", run=f"{TRAINER}/no-such-run"),
                line(model="real"),
                "garbage",
                '{"run": NaN}',
                "[" * 5000,
                line(model="half")[:40],  # a line a worker is still writing
            ]
        )
    )

    def models() -> tuple[dict[str, dict], dict]:
        caches.clear_all()
        response = client.get("/api/models/")
        assert response.status_code == 200
        return {n: m for m in response.json()["models"] for n in m["names"]}, response.json()

    found, data = models()
    assert (found["real"]["link"], found["real"]["checkpoint"]) == ("exact", "checkpoint-200")
    # The real adapter is linked by its folder; the forged lines add nothing to that.
    for name in ("etc", "passwd"):
        assert found[name]["link"] is None and found[name]["run"] is None, name
    assert "../../etc/passwd" not in json.dumps(data)
    assert data["notes"] == [
        f"7 lines of {serving.RECORD} skipped: not a record, or naming a run, checkpoint or "
        "folder this workspace does not hold."
    ]
    page = client.get("/models/")
    assert page.status_code == 200 and "7 lines of .tuner/served.jsonl skipped" in page.text

    # Not a file to read: said, and the servers' models are linked as any others.
    outside = tmp_path / "served.jsonl"
    outside.write_text(line(model="passwd", path="/etc"))
    secret_link = record.with_name("elsewhere")
    secret_link.symlink_to(outside)
    big = record.with_name("big")
    with open(big, "wb") as f:
        f.truncate(serving.MAX_FILE_BYTES + 1)
    fifo = record.with_name("fifo")
    os.mkfifo(fifo)
    folder = record.with_name("folder")
    folder.mkdir()
    for what, said in (
        (secret_link, "leads outside the workspace"),
        (big, "is larger than 64 MB"),
        (fifo, "is not a regular file"),
        (folder, "is not a regular file"),
    ):
        record.unlink()
        record.symlink_to(what.name)
        found, data = models()
        assert said in data["notes"][0], what.name
        assert found["real"]["link"] == "exact" and found["passwd"]["link"] is None
        page = client.get("/models/")
        assert page.status_code == 200 and said in page.text
    # Gone while the pages read it: nothing to say.
    record.unlink()
    assert models()[1]["notes"] == []


def test_a_result_with_more_passes_than_cases_is_no_pass_rate(client, use_workspace):
    from .eval_results import API, URL, evaluated, make_run

    ws = make_run(use_workspace)
    # As a misread output leaves them: 5 of 4 passed; and a job that ran no case.
    evaluated(ws, "levels", {"checkpoint-200": (5, 4), "checkpoint-300": (2, 4)})
    EvaluationJob.objects.filter(checkpoint="checkpoint-300").update(total=0, passed=0)
    evaluated(
        ws, "unicode ünï—" + "x" * 200, {"checkpoint-200": (3, 4), "checkpoint-300": (2, 4)}, 10
    )
    long_set = "eval:unicode ünï—" + "x" * 200
    for url in (URL, API, URL + "checkpoint-200/", API + "metrics/"):
        for rank in ("", "training", long_set, "loss&order=max"):
            response = client.get(f"{url}?rank={rank}" if rank else url)
            assert response.status_code == 200, (url, rank)
        # Only the prompt set with real pass rates can rank.
        for rank in ("eval:levels", "eval:" + "ü" * 5000, "eval:\x00"):
            if "metrics" not in url:
                assert client.get(f"{url}?rank={rank}").status_code == 400, (url, rank)
    data = client.get(API).json()
    assert data["rank"]["prompt_sets"] == [long_set.removeprefix("eval:")]
    by_name = {c["name"]: c["evaluations"] for c in data["checkpoints"]}
    assert [e["passed"] for e in by_name["checkpoint-200"]] == [3]


def test_lines_the_evaluator_printed_for_a_server_count_no_case():
    from tuner_site.jobs.evaluator import Progress

    progress = Progress()
    progress.feed("Running 2 evaluations")
    progress.feed("  ✗ FAIL  case_1 (0.10s)")
    # A server's error text, printed as it came, holding lines that look like cases.
    progress.feed("         Error: HTTP 500: boom")
    for _ in range(5):
        progress.feed("  ✓ PASS  injected (0.00s)")
    progress.feed("  ✓ PASS  case_2 (0.10s)")
    fields = progress.fields()
    assert fields["total"] == 2 and fields["done"] == 2
    assert 0 <= int(fields["passed"]) <= 2  # type: ignore[call-overload]


def test_a_finished_jobs_counts_are_the_result_files_own(use_workspace):
    from tuner_site.jobs.evaluator import result_counts

    from .eval_results import result_file

    result_file(use_workspace, "run_20251201_120000", "levels", 3, 4)
    path = use_workspace / "Evaluator" / "results" / "run_20251201_120000.json"
    assert result_counts(path, use_workspace) == {"total": 4, "done": 4, "passed": 3}
    data = json.loads(path.read_text())
    for summary in ({"total": 4, "passed": 9}, {"total": "NaN", "passed": 1}, {}):
        path.write_text(json.dumps(data | {"summary": summary}))
        assert result_counts(path, use_workspace) == {}, summary
    path.write_text('{"summary": {"total": NaN, "passed": Infinity}}')
    assert result_counts(path, use_workspace) == {}


@pytest.fixture
def silent_port():
    """A loopback port that takes connections and never says a word, as a hung Redis."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    taken: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                taken.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1], taken
    listener.close()
    for conn in taken:
        conn.close()


def test_a_redis_that_is_down_or_silent_fails_the_sweep_at_once_saying_why(
    client, staff, run_dir, ollama, settings, silent_port
):
    import time

    from tuner_site.settings import rq_queues

    port, asked = silent_port
    settings.TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend"}}
    for url, said in (
        ("redis://127.0.0.1:9/0", "Connection refused"),
        (f"redis://127.0.0.1:{port}/0", "Timeout reading from socket"),
    ):
        settings.RQ_QUEUES = rq_queues(url)
        began = time.monotonic()
        response = post(client, GOOD)
        took = time.monotonic() - began
        assert response.status_code == 201
        rows = response.json()["checkpoints"]
        assert len(rows) == 6 and all(r["status"] == "failed" for r in rows)
        errors = [r["error"] for r in rows]
        assert all(e.startswith("The job could not be queued: ") and said in e for e in errors)
        # One wait for the queue (redis-py's 5 s timeout), not one per checkpoint (30 s).
        assert took < 15, took
    assert len(asked) == 1  # the silent one was asked once, not once per checkpoint
    assert not EvaluationJob.objects.filter(status__in=("queued", "running")).exists()


def test_a_vllm_that_sits_on_the_runtime_loading_question_is_said_within_seconds(
    client, staff, run_dir, vllm, monkeypatch
):
    import threading

    assert vllm._server is not None
    handler = vllm._server.RequestHandlerClass
    answer = handler.do_POST
    release = threading.Event()

    def sits(self) -> None:
        if self.path == "/v1/unload_lora_adapter":
            release.wait(60)
        answer(self)

    monkeypatch.setattr(handler, "do_POST", sits)
    try:
        response = post(client, GOOD | {"backend": "vllm", "base": ""})
    finally:
        release.set()
    assert response.status_code == 400
    problem = response.json()["fields"]["backend"][0]
    assert problem.endswith("/v1/unload_lora_adapter did not answer within 10 s"), problem
    assert not Sweep.objects.exists()


def test_a_line_claiming_a_result_of_another_model_does_not_make_it_exact(client, run_dir):
    from discovery import caches, serving
    from tuner_site import workspace

    from .eval_results import result_file

    root = workspace.current().root
    result_file(root, "run_20251201_120000", "levels", 3, 4)
    asked = json.loads((root / "Evaluator" / "results" / "run_20251201_120000.json").read_text())
    record = root / serving.RECORD
    record.parent.mkdir(exist_ok=True)
    line = {
        "run": f"{TRAINER}/{RUN}",
        "checkpoint": "checkpoint-200",
        "kind": "ollama",
        "server": "http://127.0.0.1:9",
        "weights_digest": "sha256:" + "a" * 64,
        "result": "run_20251201_120000",
    }
    record.write_text(json.dumps(line | {"model": "tuner-someone-else:latest"}) + "\n")

    def result_link() -> tuple[str | None, str | None]:
        caches.clear_all()
        (row,) = [
            m
            for m in client.get("/api/models/").json()["models"]
            if any(e["name"] == "run_20251201_120000" for e in m["evaluations"])
        ]
        return row["link"], row["checkpoint"]

    assert result_link() != ("exact", "checkpoint-200")
    # The line a sweep writes names the model the result asked: that one links.
    record.write_text(json.dumps(line | {"model": asked["metadata"]["model"]}) + "\n")
    assert result_link() == ("exact", "checkpoint-200")


def test_a_body_too_large_or_with_too_many_fields_is_a_400_that_says_so(client, staff, run_dir):
    from django.test import Client

    big = json.dumps(GOOD | {"tags": "x" * (3 * 2**20)})
    response = post(client, big)
    assert response.status_code == 400
    assert response.json()["error"].startswith("The request's body is over 2.5 MB")
    fields = "&".join(f"checkpoints=c{i}" for i in range(5000))
    response = post(client, fields, "application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert "more than 1,000 fields" in response.json()["error"]
    # With CSRF checked, Django reads the fields before any view: the page says it too.
    from django.middleware.csrf import _get_new_csrf_string

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(staff)
    strict.cookies["csrftoken"] = token = _get_new_csrf_string()
    page = strict.post(
        f"/runs/{TRAINER}/{RUN}/sweeps/new/",
        fields + f"&csrfmiddlewaretoken={token}",
        content_type="application/x-www-form-urlencoded",
    )
    assert page.status_code == 400 and "more than 1,000 fields" in page.text
    assert not Sweep.objects.exists()
