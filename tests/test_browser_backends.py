"""A backend going down and coming back, seen in an open page without a reload."""

from __future__ import annotations

import pytest

from . import fake_servers as fs

# The live server runs in another thread, so tests' data must be committed.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ollama(settings):
    server = fs.FakeServer("ollama").start()
    settings.OLLAMA_HOST = server.host
    settings.TUNER_REFRESH_SECONDS = 1
    # A stopped server refuses at once whatever the deadline; a short one only made a probe of
    # the running server miss it on a loaded machine.
    settings.TUNER_BACKEND_TIMEOUT = 3.0
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("path", "panel"), [("/backends/", "#backends-panels"), ("/", "#backends-compact")]
)
def test_a_stopped_backend_turns_unavailable_and_comes_back_without_a_reload(
    page, live_server, use_workspace, ollama, path, panel
):
    page.goto(f"{live_server.url}{path}")
    page.evaluate("window.notReloaded = true")
    ollama_panel = page.locator(f"{panel} [data-backend=ollama]")
    assert "available" in ollama_panel.inner_text()
    assert "nexus-tools-sft:q8" in ollama_panel.inner_text()

    ollama.stop()
    # Waits for the reason, not the first "unavailable": a probe just before the stop that
    # missed its deadline would say that instead.
    page.wait_for_selector(
        f"{panel} [data-backend=ollama]:has(.status-unavailable):has-text('is not running at')",
        timeout=8_000,
    )
    down = page.locator(f"{panel} [data-backend=ollama]").inner_text()
    assert "Ollama is not running at" in down
    assert "ast answered" in down  # what it had when it was last up stays in view

    restarted = fs.FakeServer("ollama", port=ollama.port).start()
    try:
        page.wait_for_selector(f"{panel} [data-backend=ollama] .status-available", timeout=8_000)
        assert page.evaluate("window.notReloaded") is True
    finally:
        restarted.stop()
