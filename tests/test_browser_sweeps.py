"""A sweep's page as a user follows it, in headless Chromium: live progress per checkpoint,
Cancel, and the same page on a phone."""

from __future__ import annotations

import json
import threading

import pytest

from . import test_sweeps as sweeps
from .evaluator_ws import wait_for
from .test_browser_evaluations import PASSWORD, fits, sign_in
from .test_sweeps import BASE, RUN, TRAINER, strengths

pytestmark = pytest.mark.django_db(transaction=True)
# The run, its prompt set and the fake Ollama, as the sweep tests make them.
run_dir, ollama = sweeps.run_dir, sweeps.ollama


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("ada", password=PASSWORD, is_staff=True)


def test_a_sweep_page_follows_the_checkpoints_and_cancels(
    browser, client, live_server, settings, staff, run_dir, ollama, workers, tmp_path
):
    settings.TUNER_REFRESH_SECONDS = 1
    strengths(ollama, run_dir)
    ollama.gate = threading.Semaphore(0)
    client.force_login(staff)
    body = {"backend": "ollama", "base": BASE, "prompt_set": "levels"}
    body["checkpoints"] = ["checkpoint-200", "checkpoint-300", "final_model"]
    made = client.post(
        f"/api/runs/{TRAINER}/{RUN}/sweeps/", json.dumps(body), content_type="application/json"
    ).json()
    workers()
    for width, height in ((1280, 900), (390, 844)):
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        page.set_default_timeout(20_000)
        sign_in(page, live_server, made["url"])
        first = page.locator("tr[data-checkpoint='checkpoint-200']")
        first.locator(".status:has-text('evaluating')").wait_for()
        assert page.locator("tr[data-checkpoint='final_model'] .status").inner_text() == "queued"
        assert fits(page), width  # the table scrolls inside its card, not the page
        page.screenshot(path=str(tmp_path / f"sweep-{width}.png"), full_page=True)
        if width == 1280:
            page.evaluate("window.notReloaded = true")
            ollama.gate.release(1)
            first.locator("td.num:text-is('1/4')").wait_for()  # progress without a reload
            assert page.evaluate("window.notReloaded")
        else:
            page.get_by_role("button", name="Cancel").click()
            page.locator("#sweep[data-status=cancelled]").wait_for()
            assert page.get_by_role("button", name="Cancel").count() == 0
        context.close()
    wait_for(lambda: not ollama.created, "the temporary model to be removed")
