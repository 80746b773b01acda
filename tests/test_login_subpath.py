"""The login guard decides on the route Django resolves, and logging in works under a sub-path.

A `SCRIPT_NAME` (from a proxy's header, or gunicorn's environment) moves every URL under a
prefix: it must neither open a route (`SCRIPT_NAME: /admin` before `/api/runs/`) nor close the
login page (`SCRIPT_NAME: /tuner` redirecting login to itself).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sampledata import runs as wb

from .conftest import REPO, age, started
from .fake_servers import free_port
from .test_security import RUN, sample_urls

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-password-1"


@pytest.fixture
def guarded(settings, use_workspace: Path) -> Path:
    settings.TUNER_REQUIRE_LOGIN = True
    wb.make_run(use_workspace, "sft", started(RUN), max_steps=20, save_every=10)
    age(use_workspace / "Trainers", 7200)
    return use_workspace


@pytest.mark.parametrize(
    "script_name", ["/admin", "/admin/", "/static", "/accounts/login", "/accounts/login/"]
)
def test_a_script_name_does_not_open_a_route(client, guarded, script_name):
    for url in sample_urls():
        response = client.get(url, SCRIPT_NAME=script_name)
        if url.startswith("/api/"):
            assert response.status_code == 401, (script_name, url)
        else:
            assert response.status_code == 302, (script_name, url, response.status_code)
            assert "/accounts/login/?next=" in response["Location"], url


def test_under_a_sub_path_the_login_page_answers_instead_of_redirecting_to_itself(
    client, guarded, django_user_model
):
    # Django's test client does not set the script prefix links are made with (a real WSGI
    # server does: the gunicorn tests below check the links); the guard sees SCRIPT_NAME.
    django_user_model.objects.create_user("teammate", password=PASSWORD)
    sub = {"SCRIPT_NAME": "/tuner"}
    response = client.get("/runs/", **sub)
    assert response.status_code == 302 and "next=/tuner/runs/" in response["Location"]
    assert client.get("/accounts/login/", {"next": "/tuner/runs/"}, **sub).status_code == 200
    assert client.get("/api/runs/", **sub).status_code == 401
    assert client.get("/admin/", **sub).status_code == 302
    done = client.post(
        "/accounts/login/",
        {"username": "teammate", "password": PASSWORD, "next": "/tuner/runs/"},
        **sub,
    )
    assert done.status_code == 302 and done["Location"] == "/tuner/runs/"
    assert client.get("/runs/", **sub).status_code == 200
    assert client.get(f"/runs/rtx3090_sft/{RUN}/", **sub).status_code == 200


def test_htmx_requests_are_sent_to_the_login_page(client, guarded):
    response = client.get("/runs/", headers={"HX-Request": "true"}, SCRIPT_NAME="/tuner")
    assert "/accounts/login/?next=/tuner/runs/" in response["HX-Redirect"]


# Real gunicorn on 127.0.0.1 ------------------------------------------------------------------


def _env(data: Path, workspace: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TUNER_", "DJANGO_", "DATABASE_URL", "SCRIPT_NAME", "FORCE_"))
    }
    return env | {
        "TUNER_DATA_DIR": str(data),
        "TUNER_WORKSPACE": str(workspace),
        "TUNER_REQUIRE_LOGIN": "1",
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "OLLAMA_HOST": "",
        "LMSTUDIO_HOST": "",
        "TUNER_INDEX_DIR": "",
        **extra,
    }


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, check=True, capture_output=True
    )


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> tuple[Path, Path]:
    """A migrated data folder with one user, static files collected, and a workspace."""
    base = tmp_path_factory.mktemp("gunicorn")
    data, workspace = base / "data", (base / "ws").resolve()
    wb.make_run(workspace, "sft", started(RUN), max_steps=20, save_every=10)
    age(workspace / "Trainers", 7200)
    env = _env(data, workspace, DJANGO_SUPERUSER_PASSWORD=PASSWORD)
    _manage(env, "migrate", "--no-input", "-v0")
    _manage(env, "collectstatic", "--no-input", "-v0")
    _manage(env, "createsuperuser", "--no-input", "--username", "teammate", "--email", "t@x.lan")
    return data, workspace


@pytest.fixture
def gunicorn(prepared) -> Iterator:
    servers: list[subprocess.Popen] = []

    def start(**extra: str) -> str:
        port = free_port()
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("gunicorn")), "tuner_site.wsgi"]
            + ["--workers", "1", "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
            cwd=REPO,
            env=_env(*prepared, **extra),
            start_new_session=True,
        )
        servers.append(proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(base + "/accounts/login/", timeout=2)
                return base
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("gunicorn did not start")

    yield start
    for proc in servers:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def test_gunicorn_ignores_a_script_name_header_that_names_an_open_route(gunicorn):
    base = gunicorn()
    for prefix in ("/admin", "/static", "/accounts/login"):
        with httpx.Client(base_url=base, headers={"SCRIPT_NAME": prefix}) as client:
            api = client.get(f"{prefix}/api/runs/")
            assert api.status_code == 401 and RUN not in api.text, prefix
            page = client.get(f"{prefix}/runs/")
            assert page.status_code == 302, prefix
            assert page.headers["location"].startswith(f"{prefix}/accounts/login/")


def _log_in(client: httpx.Client, login_url: str, next_url: str) -> httpx.Response:
    form = client.get(login_url, params={"next": next_url})
    assert form.status_code == 200, form.status_code
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)[1]
    return client.post(
        login_url,
        data={
            "csrfmiddlewaretoken": token,
            "username": "teammate",
            "password": PASSWORD,
            "next": next_url,
        },
        headers={"Referer": str(form.url)},
    )


@pytest.mark.parametrize("how", ["environment", "header"])
def test_gunicorn_under_a_sub_path_logs_in_and_serves_pages_static_files_and_head(gunicorn, how):
    base = gunicorn(SCRIPT_NAME="/tuner") if how == "environment" else gunicorn()
    headers = {"SCRIPT_NAME": "/tuner"} if how == "header" else {}
    with httpx.Client(base_url=base, headers=headers) as client:
        first = client.get("/tuner/runs/")
        assert first.status_code == 302
        assert first.headers["location"] == "/tuner/accounts/login/?next=/tuner/runs/"
        done = _log_in(client, "/tuner/accounts/login/", "/tuner/runs/")
        assert done.status_code == 302 and done.headers["location"] == "/tuner/runs/"
        page = client.get("/tuner/runs/")
        assert page.status_code == 200 and f"/tuner/runs/rtx3090_sft/{RUN}/" in page.text
        runs = json.loads(client.get("/tuner/api/runs/").text)["runs"]
        assert runs[0]["url"] == f"/tuner/runs/rtx3090_sft/{RUN}/"
        assert client.head(runs[0]["url"]).status_code == 200
        if how == "environment":  # a header-set prefix cannot reach the static URLs
            css = re.search(r'href="(/tuner/static/css/app\.[^"]+\.css)"', page.text)
            assert css and client.get(css[1]).status_code == 200
