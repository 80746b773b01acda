"""Safe to share: logins everywhere when asked, hostile paths, and faults that must not be 500s."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

import discovery.logindex as logindex
from discovery.lineage import model_id
from sampledata import evaluator
from sampledata import runs as wb

from . import fake_servers as fs
from .conftest import age, started

pytestmark = pytest.mark.django_db

RUN = "20251101_100000"
SECRET = "TOP-SECRET-CONTENT-42"


@pytest.fixture
def ws(use_workspace: Path, tmp_path: Path) -> Path:
    wb.make_run(use_workspace, "sft", started(RUN), max_steps=100, save_every=25)
    age(use_workspace / "Trainers", 7200)
    evaluator.write_prompt_sets(use_workspace)
    # Named like the prompt set, so `<name>` in every route points at something real.
    evaluator.write_evaluation(
        use_workspace, "tool_prompts", "m:q8", "tool_prompts", [("a", True, [])], started(RUN)
    )
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    (outside / "checkpoints" / "checkpoint-5").mkdir(parents=True)
    (outside / "checkpoints" / "checkpoint-5" / "secret.txt").write_text(SECRET)
    (outside / "final_model").mkdir()
    out = wb.output_dir(use_workspace, "sft")
    (out / "20251102_100000").symlink_to(outside)  # a run that is a link out
    run = out / RUN
    (run / "checkpoints" / "checkpoint-999").symlink_to(outside / "checkpoints" / "checkpoint-5")
    (run / "checkpoints" / "checkpoint-25" / "leak.txt").symlink_to(outside / "secret.txt")
    (use_workspace / "Evaluator" / "prompts" / "leak.json").symlink_to(outside / "secret.txt")
    return use_workspace


def sample_urls(job_id: int = 1, sweep_id: int = 1) -> Iterator[str]:
    """One concrete URL for every route of the dashboard, admin and login aside."""
    values = {
        "trainer": "rtx3090_sft",
        "run": RUN,
        "checkpoint": "checkpoint-25",
        "name": "tool_prompts",
        "job_id": str(job_id),
        "sweep_id": str(sweep_id),
        "model": model_id(("name", "m:q8")),  # the model the fixture's evaluation names
    }

    def walk(patterns, prefix: str) -> Iterator[str]:
        for p in patterns:
            route = prefix + str(p.pattern)
            if route.startswith(("admin/", "accounts/")):
                continue  # admin has its own login, and the login pages must stay open
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, route)
            elif isinstance(p, URLPattern):
                yield "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], route)

    yield from walk(get_resolver().url_patterns, "")


def test_the_route_list_covers_pages_fragments_and_json():
    urls = set(sample_urls())
    assert {"/", "/runs/", "/backends/", "/prompt-sets/", "/api/runs/", "/api/backends/"} <= urls
    assert {"/evaluations/", "/api/evaluations/tool_prompts/"} <= urls
    assert {"/evaluations/new/", "/evaluations/jobs/1/", "/api/evaluations/jobs/1/cancel/"} <= urls
    assert f"/api/runs/rtx3090_sft/{RUN}/metrics/" in urls
    assert len(urls) >= 14


@pytest.mark.parametrize("htmx", [False, True])
def test_with_require_login_every_route_needs_a_login(client, ws, settings, htmx, job_id, sweep_id):
    settings.TUNER_REQUIRE_LOGIN = True
    headers = {"HX-Request": "true", "HX-Target": "backends-panels"} if htmx else {}
    for url in sample_urls(job_id, sweep_id):
        response = client.get(url, headers=headers)
        if url.startswith("/api/"):
            assert response.status_code == 401, url
            assert "Log in" in json.loads(response.content)["error"]
        elif htmx:
            assert response.status_code == 200 and "/accounts/login/" in response["HX-Redirect"], (
                url
            )
        else:
            assert response.status_code == 302, url
            assert response["Location"].startswith("/accounts/login/?next="), url


def test_a_logged_in_user_sees_every_route(
    client, ws, settings, django_user_model, job_id, sweep_id
):
    settings.TUNER_REQUIRE_LOGIN = True
    user = django_user_model.objects.create_user("teammate", password="a-long-password-1")
    client.force_login(user)
    for url in sample_urls(job_id, sweep_id):
        # Cancelling and running again are POST-only actions; every other route is a page or
        # its JSON.
        expected = 405 if url.endswith(("/cancel/", "/again/")) else 200
        assert client.get(url).status_code == expected, url


def test_the_login_page_logs_a_teammate_in(client, ws, settings, django_user_model):
    settings.TUNER_REQUIRE_LOGIN = True
    django_user_model.objects.create_user("teammate", password="a-long-password-1")
    assert client.get("/accounts/login/").status_code == 200
    response = client.post(
        "/accounts/login/?next=/runs/",
        {"username": "teammate", "password": "a-long-password-1", "next": "/runs/"},
    )
    assert response.status_code == 302 and response["Location"] == "/runs/"
    assert client.get("/runs/").status_code == 200


def test_admin_is_behind_a_login_even_without_require_login(client, ws):
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


HOSTILE = [
    "runs/../../../../etc/passwd/",
    "runs/rtx3090_sft/../../../etc/",
    "runs/%2e%2e/%2e%2e/",
    "runs/rtx3090_sft/%2e%2e/",
    f"runs/rtx3090_sft/{RUN}/%2e%2e/",
    f"runs/rtx3090_sft/{RUN}/..%2f..%2f..%2fsecret.txt/",
    "runs/rtx3090_sft/%2Fetc%2Fpasswd/",
    "runs/%2Fetc/passwd/",
    "runs//etc/passwd/",
    f"runs/rtx3090_sft/{RUN}%00/",
    f"runs/rtx3090_sft/{RUN}/checkpoint-25%00/",
    "runs/rtx3090_sft/" + "a" * 5000 + "/",
    f"runs/rtx3090_sft/{RUN}/" + "checkpoint-" + "9" * 400 + "/",
    "runs/rtx3090_\u0455ft/" + RUN + "/",  # Cyrillic dze for "s"
    "runs/rtx3090_sft/" + RUN.replace("1", "\uff11") + "/",  # fullwidth digit one
    "runs/rtx3090_sft/20251102_100000/",  # a run that links out of the workspace
    "runs/rtx3090_sft/20251102_100000/final_model/",
    f"runs/rtx3090_sft/{RUN}/checkpoint-999/",  # a checkpoint that links out
    f"runs/rtx3090_sft/{RUN}/checkpoints/",
    f"runs/rtx3090_sft/{RUN}/logs/",
    f"runs/rtx3090_sft/{RUN}/training_lineage.json/",
    "prompt-sets/leak/",
    "prompt-sets/..%2f..%2f..%2fsecret/",
    "prompt-sets/%2e%2e/",
    "prompt-sets/tool_prompts%00/",
    "evaluations/..%2f..%2fsecret/",
    "evaluations/%2e%2e/",
]


@pytest.mark.parametrize("path", HOSTILE)
@pytest.mark.parametrize("prefix", ["/", "/api/"])
def test_hostile_paths_are_404_or_400_and_never_leak(client, ws, path, prefix):
    response = client.get(prefix + path)
    assert response.status_code in (400, 404), (prefix + path, response.status_code)
    assert SECRET.encode() not in response.content


def test_links_out_of_the_workspace_are_not_listed_or_served(client, ws):
    data = json.loads(client.get("/api/runs/").content)
    assert [r["run"] for r in data["runs"]] == [RUN]
    ckpts = json.loads(client.get(f"/api/runs/rtx3090_sft/{RUN}/").content)["checkpoints"]
    assert "checkpoint-999" not in [c["name"] for c in ckpts]
    files = json.loads(client.get(f"/api/runs/rtx3090_sft/{RUN}/checkpoint-25/").content)["files"]
    assert "leak.txt" not in [f["name"] for f in files]
    sets = json.loads(client.get("/api/prompt-sets/").content)["prompt_sets"]
    assert "leak" not in [s["name"] for s in sets]


@pytest.mark.parametrize("mode", ["slow", "error", "html", "refused"])
def test_every_page_answers_within_3_s_whatever_a_backend_does(client, ws, settings, mode):
    server = fs.FakeServer("ollama", mode="ok" if mode == "refused" else mode).start()
    if mode == "refused":
        server.stop()
    settings.OLLAMA_HOST = server.host
    settings.TUNER_BACKEND_TIMEOUT = 1.5
    try:
        for url in ("/", "/backends/", "/api/backends/", "/runs/"):
            t = time.monotonic()
            response = client.get(url)
            assert response.status_code == 200, url
            assert time.monotonic() - t < 3.0, url
        backend = json.loads(client.get("/api/backends/").content)["backends"][0]
        assert backend["available"] is False and backend["error"]
    finally:
        server.stop()


@pytest.mark.parametrize("change", ["delete", "truncate", "replace"])
def test_a_log_changed_while_a_request_reads_it_is_not_a_500(client, ws, monkeypatch, change):
    log = next((wb.output_dir(ws, "sft") / RUN / "logs").glob("training_2*.jsonl"))
    real = logindex._read_at
    done = []

    def racing(f, offset, size):
        if not done:  # the file changes after it was opened and measured
            done.append(True)
            if change == "delete":
                log.unlink()
            elif change == "truncate":
                with open(log, "r+b") as w:
                    w.truncate(10)
            else:
                tmp = log.with_suffix(".tmp")
                tmp.write_text(json.dumps({"step": 1, "loss": 0.1}) + "\n")
                os.replace(tmp, log)
        return real(f, offset, size)

    monkeypatch.setattr(logindex, "_read_at", racing)
    for url in (f"/runs/rtx3090_sft/{RUN}/", f"/api/runs/rtx3090_sft/{RUN}/", "/api/runs/"):
        assert client.get(url).status_code == 200, url
    assert done
    monkeypatch.setattr(logindex, "_read_at", real)
    assert client.get(f"/api/runs/rtx3090_sft/{RUN}/").status_code == 200


def test_an_unreadable_workspace_is_a_clear_page(client, ws, monkeypatch):
    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "iterdir", denied)
    response = client.get("/runs/")
    assert response.status_code == 503 and "TUNER_WORKSPACE" in response.content.decode()


def test_a_workspace_that_is_a_file_is_a_clear_page(client, settings, tmp_path):
    settings.TUNER_WORKSPACE = tmp_path / "file"
    settings.TUNER_WORKSPACE.write_text("not a folder")
    for url in ("/", "/runs/", "/prompt-sets/"):
        assert client.get(url).status_code == 503
