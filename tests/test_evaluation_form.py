"""Starting an evaluation: the form's states, its checks, the JSON way in, who may do it."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from tuner_site.models import EvaluationJob

from . import fake_servers as fs
from .evaluator_ws import MODEL

pytestmark = pytest.mark.django_db

GOOD = {"backend": "ollama", "model": MODEL, "prompt_set": "scored"}


@pytest.fixture
def ollama(settings):
    server = fs.FakeServer("ollama").start()
    settings.OLLAMA_HOST = server.host
    yield server
    server.stop()


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("ada", password="pw-ada-12345", is_staff=True)


@pytest.fixture
def member(django_user_model):
    return django_user_model.objects.create_user("bob", password="pw-bob-12345")


@pytest.fixture
def as_staff(client, staff):
    client.force_login(staff)
    return client


def has_form(response) -> bool:
    return 'id="eval-form"' in response.content.decode()


def test_a_workspace_without_an_evaluator_says_so_and_offers_no_form(
    as_staff, settings, demo_workspace, ollama
):
    settings.TUNER_WORKSPACE = demo_workspace  # the demo ships no Evaluator
    response = as_staff.get("/evaluations/new/")
    assert response.status_code == 200 and not has_form(response)
    assert f"This workspace ({demo_workspace}) has no Evaluator/cli.py" in response.content.decode()
    offer = as_staff.get("/api/evaluations/new/").json()
    assert offer["evaluator"]["ready"] is False and offer["can_start"] is False
    response = as_staff.post("/api/evaluations/jobs/", GOOD)
    assert response.status_code == 409 and "has no Evaluator/cli.py" in response.json()["error"]
    assert as_staff.post("/evaluations/new/", GOOD).status_code == 409
    assert not EvaluationJob.objects.exists()


def test_with_no_ollama_or_lm_studio_configured_the_page_says_so(
    as_staff, settings, eval_workspace
):
    settings.TUNER_OPENAI_BACKENDS = "vllm=127.0.0.1:9"  # the Evaluator cannot use these
    response = as_staff.get("/evaluations/new/")
    assert not has_form(response)
    assert "No Ollama or LM Studio server is configured" in response.content.decode()


def test_servers_that_do_not_answer_are_named_with_what_to_do(as_staff, settings, eval_workspace):
    down = fs.FakeServer("ollama").start()
    down.stop()
    settings.OLLAMA_HOST = down.host
    response = as_staff.get("/evaluations/new/")
    assert not has_form(response)
    assert f"Ollama is not running at 127.0.0.1:{down.port}" in response.content.decode()


def test_anonymous_users_see_a_sign_in_link_instead_of_the_form(client, eval_workspace, ollama):
    response = client.get("/evaluations/new/?prompt_set=scored")
    page = response.content.decode()
    assert not has_form(response)
    assert 'href="/accounts/login/?next=%2Fevaluations%2Fnew%2F%3Fprompt_set%3Dscored"' in page
    assert client.get("/api/evaluations/new/").json()["why_not"].startswith("Sign in")


def test_users_who_are_not_staff_are_told_why(client, member, eval_workspace, ollama):
    client.force_login(member)
    response = client.get("/evaluations/new/")
    assert not has_form(response)
    assert "bob is not a staff user" in response.content.decode()


def test_the_form_is_prefilled_from_an_evaluate_link(as_staff, eval_workspace, ollama):
    response = as_staff.get(f"/evaluations/new/?backend=ollama&model={MODEL}&prompt_set=scored")
    page = response.content.decode()
    assert has_form(response)
    assert f'<option value="{MODEL}" selected>' in page
    assert '<option value="scored" selected>' in page
    assert 'name="temperature" type="number" min="0" max="2" step="any"' in page
    assert 'value="0.2"' in page


def test_choosing_another_server_swaps_the_form_only(as_staff, settings, eval_workspace, ollama):
    lmstudio = fs.FakeServer("lmstudio", "v1").start()
    settings.LMSTUDIO_HOST = lmstudio.host
    try:
        response = as_staff.get(
            "/evaluations/new/?backend=lmstudio&prompt_set=scored", headers={"HX-Request": "true"}
        )
    finally:
        lmstudio.stop()
    page = response.content.decode()
    assert page.lstrip().startswith('<form id="eval-form"') and "<html" not in page
    assert '<option value="qwen2.5-7b-instruct">' in page and MODEL not in page


def test_servers_and_prompt_sets_link_to_a_prefilled_form(client, eval_workspace, ollama):
    page = client.get("/backends/").content.decode()
    assert 'href="/evaluations/new/?backend=ollama&amp;model=gemma3%3Alatest">Evaluate</a>' in page
    page = client.get("/prompt-sets/scored/").content.decode()
    assert 'href="/evaluations/new/?prompt_set=scored">Evaluate</a>' in page


BAD = [
    ({"backend": "vllm"}, "backend", "backend must be one of the configured servers: ollama"),
    ({"model": "llama3:8b"}, "model", f"models ollama serves now: {MODEL}, gemma3:latest;"),
    ({"model": ""}, "model", "model must be one of the models ollama serves now"),
    ({"prompt_set": "nope"}, "prompt_set", "Evaluator/prompts/: tool_prompts, behavior_prompts"),
    ({"limit": "abc"}, "limit", "limit must be a whole number from 1 to 2,147,483,647"),
    ({"limit": "0"}, "limit", "limit must be a whole number from 1 to 2,147,483,647"),
    # Beyond what the database's integer holds: a message, not a 500 at the insert.
    ({"limit": str(10**20)}, "limit", "limit must be a whole number from 1 to 2,147,483,647"),
    ({"temperature": "5"}, "temperature", "temperature must be a number from 0 to 2"),
    ({"temperature": "nan"}, "temperature", "temperature must be a number from 0 to 2"),
    ({"seed": "-1"}, "seed", "seed must be a whole number from 0 to 2147483647"),
    ({"seed": "1.5"}, "seed", "seed must be a whole number from 0 to 2147483647"),
    ({"tags": "create, nope"}, "tags", "tags scored uses, comma-separated: create, folder"),
]


@pytest.mark.parametrize(("change", "field", "message"), BAD)
def test_bad_fields_are_shown_on_the_form(as_staff, eval_workspace, ollama, change, field, message):
    response = as_staff.post("/evaluations/new/", GOOD | change)
    assert response.status_code == 400 and has_form(response)
    assert message in response.content.decode().replace("&#x27;", "'")
    assert not EvaluationJob.objects.exists()


@pytest.mark.parametrize(("change", "field", "message"), BAD)
def test_bad_fields_are_400s_that_say_what_is_accepted(
    as_staff, eval_workspace, ollama, change, field, message
):
    response = as_staff.post("/api/evaluations/jobs/", GOOD | change)
    assert response.status_code == 400
    body = response.json()
    assert list(body["fields"]) == [field] and message in body["fields"][field][0]
    assert message in body["error"]
    assert not EvaluationJob.objects.exists()


def test_tags_no_case_has_together_are_refused(as_staff, eval_workspace, ollama):
    from .evaluator_ws import write_cases

    path = write_cases(eval_workspace, "split", "RR")
    cases = json.loads(path.read_text())
    cases[0]["tags"], cases[1]["tags"] = ["a"], ["b"]
    path.write_text(json.dumps(cases))
    response = as_staff.post(
        "/api/evaluations/jobs/", GOOD | {"prompt_set": "split", "tags": "a,b"}
    )
    assert response.json()["fields"] == {"tags": ["No case of split has all of these tags: a, b."]}


def test_unknown_fields_and_bodies_that_are_not_json_objects_are_400s(
    as_staff, eval_workspace, ollama
):
    response = as_staff.post("/api/evaluations/jobs/", GOOD | {"modle": "x"})
    assert response.status_code == 400
    assert response.json()["error"] == (
        "Unknown field modle: the fields are backend, model, prompt_set, tags, limit, "
        "temperature, seed."
    )
    for body in ("{not json", "[1, 2]"):
        response = as_staff.post("/api/evaluations/jobs/", body, content_type="application/json")
        assert (
            response.status_code == 400 and "backend, model, prompt_set" in response.json()["error"]
        )


def test_posts_need_the_csrf_token(staff, eval_workspace, ollama):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    response = client.post("/api/evaluations/jobs/", GOOD)
    assert response.status_code == 403 and "CSRF" in response.json()["error"]
    response = client.post("/evaluations/new/", GOOD)
    assert response.status_code == 403 and "CSRF" in response.content.decode()
    assert not EvaluationJob.objects.exists()

    # A script reads the token the JSON twin sets, and sends it back in a header.
    token = client.get("/api/evaluations/new/").cookies["csrftoken"].value
    response = client.post("/api/evaluations/jobs/", GOOD, headers={"X-CSRFToken": token})
    assert response.status_code == 201 and response.json()["status"] == "queued"
    pk = response.json()["id"]
    response = client.post(f"/api/evaluations/jobs/{pk}/cancel/", headers={"X-CSRFToken": token})
    assert response.status_code == 200 and response.json()["status"] == "cancelled"


def queued_job() -> EvaluationJob:
    return EvaluationJob.objects.create(
        backend="ollama",
        backend_kind="ollama",
        backend_url="http://127.0.0.1:9",
        model=MODEL,
        prompt_set="scored",
    )


@pytest.mark.parametrize("require_login", [False, True])
@pytest.mark.parametrize("who", ["anonymous", "member"])
def test_only_staff_start_or_cancel_jobs(
    client, settings, member, eval_workspace, ollama, require_login, who
):
    settings.TUNER_REQUIRE_LOGIN = require_login
    if who == "member":
        client.force_login(member)
    job = queued_job()
    api = 401 if who == "anonymous" else 403
    # With logins required, the middleware sends anonymous page requests to the login page.
    page = 302 if (who, require_login) == ("anonymous", True) else 403
    assert client.post("/evaluations/new/", GOOD).status_code == page
    assert client.post("/api/evaluations/jobs/", GOOD).status_code == api
    assert client.post(f"/evaluations/jobs/{job.pk}/cancel/").status_code == page
    response = client.post(f"/api/evaluations/jobs/{job.pk}/cancel/")
    assert response.status_code == api and response.json()["error"]
    assert list(EvaluationJob.objects.values_list("status", "cancel_requested")) == [
        ("queued", False)
    ]
    if require_login and who == "anonymous":
        return
    page = client.get(f"/evaluations/jobs/{job.pk}/").content.decode()
    assert "Cancel</button>" not in page


@pytest.mark.parametrize("require_login", [False, True])
def test_staff_start_and_cancel_jobs(as_staff, settings, eval_workspace, ollama, require_login):
    settings.TUNER_REQUIRE_LOGIN = require_login
    response = as_staff.post("/evaluations/new/", GOOD | {"tags": "folder", "limit": "2"})
    job = EvaluationJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/evaluations/jobs/{job.pk}/"
    assert (job.created_by.username, job.tags, job.limit, job.temperature) == (
        "ada",
        ["folder"],
        2,
        0.2,
    )
    assert job.backend_url == ollama.url and job.task_id
    page = as_staff.get(f"/evaluations/jobs/{job.pk}/").content.decode()
    assert "Cancel</button>" in page and "Waiting for a worker" in page
    response = as_staff.post(f"/evaluations/jobs/{job.pk}/cancel/", headers={"HX-Request": "true"})
    fragment = response.content.decode()
    assert fragment.lstrip().startswith('<div id="job"') and 'data-status="cancelled"' in fragment
    assert EvaluationJob.objects.get().status == "cancelled"


def test_the_jobs_list_refreshes_only_while_a_job_is_active(client, eval_workspace):
    assert "No evaluation jobs yet" in client.get("/evaluations/jobs/").content.decode()
    job = queued_job()
    page = client.get("/evaluations/jobs/").content.decode()
    assert f'<a href="/evaluations/jobs/{job.pk}/">#{job.pk}</a>' in page
    assert 'hx-trigger="every' in page
    fragment = client.get("/evaluations/jobs/", headers={"HX-Request": "true"}).content.decode()
    assert fragment.lstrip().startswith('<section id="jobs"')
    EvaluationJob.objects.update(status="succeeded", result="run_1")
    page = client.get("/evaluations/jobs/").content.decode()
    assert 'hx-trigger="every' not in page and 'href="/evaluations/run_1/"' in page
    assert client.get("/api/evaluations/jobs/").json()["jobs"][0]["result_url"] == (
        "/evaluations/run_1/"
    )
    assert client.get("/api/evaluations/jobs/999/").status_code == 404


def test_pages_that_answer_htmx_with_a_fragment_vary_on_it(client, eval_workspace, ollama):
    # Else the browser's Back shows the last polled fragment, cached under the page's URL.
    job = queued_job()
    for url in ("/evaluations/new/", "/evaluations/jobs/", f"/evaluations/jobs/{job.pk}/"):
        assert "HX-Request" in client.get(url)["Vary"], url
    assert "HX-Target" in client.get("/backends/")["Vary"]
    assert "HX-Request" in client.get("/prompt-sets/scored/")["Vary"]


def test_the_form_states_the_bounds_its_fields_are_checked_against(
    as_staff, ollama, eval_workspace
):
    from tuner_site.forms import MAX_LIMIT, MAX_TEMPERATURE
    from tuner_site.jobs.evaluator import DEFAULT_TEMPERATURE

    page = as_staff.get("/evaluations/new/").content.decode()
    assert f"0 to {MAX_TEMPERATURE:g}, the Evaluator's default {DEFAULT_TEMPERATURE}" in page
    assert f'min="0" max="{MAX_TEMPERATURE:g}"' in page and f'max="{MAX_LIMIT}"' in page


@pytest.fixture
def dashed_ollama(settings):
    """An Ollama serving a model whose name reads like an option to the Evaluator."""
    tags = json.loads(json.dumps(fs.OLLAMA_TAGS))
    tags["models"][0] |= {"name": "--help:latest", "model": "--help:latest"}
    server = fs.FakeServer("ollama", routes={"/api/tags": tags}).start()
    settings.OLLAMA_HOST = server.host
    yield server
    server.stop()


def test_names_the_evaluator_would_read_as_options_are_refused(
    as_staff, eval_workspace, dashed_ollama
):
    response = as_staff.post("/api/evaluations/jobs/", GOOD | {"model": "--help:latest"})
    assert response.status_code == 400
    assert response.json()["fields"]["model"] == [
        "The model '--help:latest' starts with “-”, which the Evaluator would read as an "
        "option: it cannot be evaluated from the dashboard."
    ]
    response = as_staff.post("/evaluations/new/", GOOD | {"tags": "create,-x"})
    assert response.status_code == 400
    assert "The tag &#x27;-x&#x27; starts with “-”" in response.content.decode()
    assert not EvaluationJob.objects.exists()


def test_a_prompt_set_file_the_evaluator_would_expand_is_refused(as_staff, eval_workspace, ollama):
    from .evaluator_ws import write_cases

    write_cases(eval_workspace, "set$HOME", "RR")
    response = as_staff.post("/api/evaluations/jobs/", GOOD | {"prompt_set": "set$HOME"})
    assert response.status_code == 400
    (message,) = response.json()["fields"]["prompt_set"]
    assert message.startswith("The prompt set file Evaluator/prompts/set$HOME.json has “$”")
    assert "rename it without them" in message


def test_the_form_says_the_limits_a_job_runs_under(as_staff, settings, eval_workspace, ollama):
    settings.TUNER_EVAL_BASE_SECONDS, settings.TUNER_EVAL_SECONDS_PER_CASE = 300, 90
    settings.TUNER_EVAL_MEMORY_MB, settings.TUNER_EVAL_RESULT_MB = 2048, 64
    page = as_staff.get("/evaluations/new/").content.decode()
    assert (
        "Limits: a job is stopped after 5m 0s plus 1m 30s a case it runs; the Evaluator may use "
        "2048 MB of memory and write files up to 64 MB."
    ) in page


def test_only_servers_the_evaluator_reaches_at_the_same_address_are_offered():
    from tuner_site.jobs.evaluator import host_port, server_problem

    assert server_problem("http://127.0.0.1:11434") is None
    assert server_problem("http://[::1]:1234/") is None and host_port("http://[::1]:1234/") == (
        "[::1]",
        1234,
    )
    # The Evaluator builds http://{host}:{port}: https, a path or a login would be lost.
    assert "speaks plain http only, not https" in server_problem("https://gpu.lan:11434")
    assert "would drop its path" in server_problem("http://gpu.lan/ollama")
    assert "user name and password" in server_problem("http://u:p@gpu.lan:11434")
