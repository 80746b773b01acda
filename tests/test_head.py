"""HEAD, as uptime checks send it: 200 and no body on every route that answers GET."""

from __future__ import annotations

from pathlib import Path

import pytest

from sampledata import evaluator
from sampledata import runs as wb

from .conftest import age, started
from .test_security import RUN, sample_urls

pytestmark = pytest.mark.django_db

# Routes that take a POST: starting an evaluation (its form, or the JSON list), cancelling and
# running a job again.
POSTS = ("/evaluations/new/", "/api/evaluations/jobs/", "/sweeps/", "/cancel/", "/again/")


@pytest.fixture
def routes_resolve(use_workspace: Path) -> Path:
    wb.make_run(use_workspace, "sft", started(RUN), max_steps=100, save_every=25)
    age(use_workspace / "Trainers", 7200)
    evaluator.write_prompt_sets(use_workspace)
    evaluator.write_evaluation(
        use_workspace, "tool_prompts", "m:q8", "tool_prompts", [("a", True, [])], started(RUN)
    )
    return use_workspace


def test_every_route_answers_head_with_200_and_no_body(client, routes_resolve, job_id, sweep_id):
    urls = list(sample_urls(job_id, sweep_id))
    assert len(urls) >= 14
    for url in urls:
        get = client.get(url)
        head = client.head(url)
        if url.endswith(("/cancel/", "/again/")):  # POST only: HEAD is refused like GET
            assert head.status_code == get.status_code == 405, url
            continue
        assert head.status_code == get.status_code == 200, url
        assert head.content == b"", url
        assert head["Content-Type"] == get["Content-Type"], url


@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/"])
def test_login_pages_answer_head_too(client, url):
    assert client.head(url).status_code == 200


def test_writes_are_still_refused_on_read_only_routes(client, routes_resolve, job_id, sweep_id):
    for url in sample_urls(job_id, sweep_id):
        if not url.endswith(POSTS):
            assert client.post(url).status_code in (403, 405), url
        assert client.put(url).status_code == 405, url
        assert client.delete(url).status_code == 405, url
