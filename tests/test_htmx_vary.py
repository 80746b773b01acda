"""A page whose URL also answers htmx with a fragment says so (`Vary`), or the browser's Back
button shows the cached bare fragment as the page."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import KTO_RUN as KTO
from .conftest import RUNNING_RUN as RUNNING

pytestmark = pytest.mark.django_db

# Each page, the htmx headers its own requests send, and the headers its answer depends on:
# the fragment (HX-Request), which part asked (HX-Target), whether a URL is pushed (HX-Trigger).
RUN, LIVE = f"/runs/rtx3090_kto/{KTO}/", f"/runs/rtx3090_kto/{RUNNING}/"
PAGES = [
    ("/", {"HX-Target": "overview-runs"}, {"hx-request", "hx-target"}),
    (
        "/runs/",
        {"HX-Target": "runs-table", "HX-Trigger": "runs-table"},
        {"hx-request", "hx-trigger"},
    ),
    ("/runs/?type=kto", {}, {"hx-request", "hx-trigger"}),
    (
        LIVE,
        {"HX-Target": "run-live", "HX-Trigger": "run-live"},
        {"hx-request", "hx-target", "hx-trigger"},
    ),
    (RUN + "?col=kl", {"HX-Trigger": "columns-form"}, {"hx-request", "hx-target", "hx-trigger"}),
    (RUN, {"HX-Target": "run-lineage"}, {"hx-request", "hx-target", "hx-trigger"}),
    (f"/compare/?run=rtx3090_kto/{KTO}", {"HX-Target": "compare-body"}, {"hx-request"}),
    ("/evaluations/", {"HX-Target": "evaluation-results"}, {"hx-request"}),
    ("/backends/", {"HX-Target": "backends-panels"}, {"hx-request", "hx-target"}),
]


@pytest.mark.parametrize(("url", "headers", "varies"), PAGES)
def test_a_page_that_answers_htmx_with_a_fragment_varies_on_it(
    client, three_runs: Path, url, headers, varies
):
    page = client.get(url)
    fragment = client.get(url, headers={"HX-Request": "true", **headers})
    assert page.status_code == fragment.status_code == 200
    assert b"<html" in page.content and b"<html" not in fragment.content
    # A template comment Django did not take as one (`{# … #}` is one line) shows as text.
    assert b"{#" not in page.content and b"{#" not in fragment.content
    for response in (page, fragment):
        assert varies <= {v.strip().lower() for v in response["Vary"].split(",")}, url
