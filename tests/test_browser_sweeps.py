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
    open_page, client, live_server, settings, staff, run_dir, ollama, workers, tmp_path
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
        page = open_page(width, height)
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
        page.context.close()  # a page left open would go on polling
    wait_for(lambda: not ollama.created, "the temporary model to be removed")


def test_evaluate_checkpoints_from_the_run_page(
    open_page, live_server, staff, run_dir, ollama, workers, tmp_path
):
    full = run_dir / "checkpoints" / "checkpoint-50"  # a full fine-tune's save: not servable
    full.mkdir()
    (full / "model.safetensors").write_bytes(b"\0" * 64)
    strengths(ollama, run_dir)
    workers()
    for width, height in ((390, 844), (1280, 900)):
        page = open_page(width, height)
        page.set_default_timeout(20_000)
        sign_in(page, live_server, f"/runs/{TRAINER}/{RUN}/")
        page.locator("[data-sweep-link]").click()
        page.wait_for_url(f"**/runs/{TRAINER}/{RUN}/sweeps/new/")
        assert fits(page), width
        boxes = page.locator("input[name=checkpoints]")
        checked = [b.get_attribute("value") for b in boxes.all() if b.is_checked()]
        assert checked == [
            "checkpoint-100",
            "checkpoint-200",
            "checkpoint-300",
            "checkpoint-400",
            "checkpoint-500",
            "final_model",
        ]
        assert page.locator("input[value=checkpoint-50]").is_disabled()
        assert (
            "full fine-tune" in page.locator("label:has(input[value=checkpoint-50])").inner_text()
        )
        page.screenshot(path=str(tmp_path / f"sweep-form-{width}.png"), full_page=True)
        if width == 390:
            # A base the adapter was not trained on is said before anything starts.
            page.select_option("select[name=base]", "")
            page.get_by_role("button", name="Evaluate checkpoints").click()
            page.locator(".field-error", has_text="base is the model").wait_for()
        else:
            page.select_option("select[name=base]", BASE)
            page.select_option("select[name=prompt_set]", "levels")
            for name in ("checkpoint-100", "checkpoint-400", "checkpoint-500", "final_model"):
                page.locator(f"input[value={name}]").uncheck()
            page.get_by_role("button", name="Evaluate checkpoints").click()
            page.wait_for_url("**/sweeps/*/")
            page.locator("#sweep[data-status=succeeded]").wait_for(timeout=60_000)
            assert page.locator("tr[data-checkpoint]").count() == 2
            assert page.locator("tr[data-checkpoint=checkpoint-200] td.num").inner_text() == "4/4"
            # Back on the run page, the checkpoint table has the prompt set's column.
            page.goto(f"{live_server.url}/runs/{TRAINER}/{RUN}/")
            cell = page.locator("table.checkpoints a[data-eval=levels]", has_text="4/4")
            assert cell.inner_text() == "4/4 · 100 % (51–100)"
            assert fits(page)
            page.screenshot(path=str(tmp_path / "run-eval-column.png"), full_page=True)
        page.context.close()  # a page left open would go on polling


def test_the_run_page_follows_a_sweep_live_and_cancels_it(
    open_page, client, live_server, settings, staff, run_dir, ollama, workers, tmp_path
):
    settings.TUNER_REFRESH_SECONDS = 1
    strengths(ollama, run_dir)
    ollama.gate = threading.Semaphore(4)  # checkpoint-100's four cases, then it waits
    client.force_login(staff)
    body = {"backend": "ollama", "base": BASE, "prompt_set": "levels"}
    body["checkpoints"] = ["checkpoint-100", "checkpoint-200", "checkpoint-300"]
    client.post(
        f"/api/runs/{TRAINER}/{RUN}/sweeps/", json.dumps(body), content_type="application/json"
    )
    workers()
    for width, height in ((1280, 900), (390, 844)):
        page = open_page(width, height)
        page.set_default_timeout(30_000)
        sign_in(page, live_server, f"/runs/{TRAINER}/{RUN}/")
        panel = page.locator("#run-sweeps")
        current = panel.locator("tr[data-checkpoint='checkpoint-200']")
        current.locator(".status:has-text('evaluating')").wait_for()
        assert panel.locator("tr[data-checkpoint='checkpoint-100'] a").inner_text() == "1/4"
        assert fits(page), width
        page.screenshot(path=str(tmp_path / f"run-sweep-{width}.png"), full_page=True)
        if width == 1280:
            page.evaluate("window.notReloaded = true")
            ollama.gate.release(1)
            current.locator("span.muted", has_text="1/4").wait_for()  # no reload
            assert page.evaluate("window.notReloaded")
        else:
            panel.get_by_role("button", name="Cancel").click()
            panel.locator("[data-cancelling]").wait_for()
            ollama.gate.release(8)
            page.locator("#run-sweeps [data-status=cancelled]").wait_for()
            # The table gains what finished, the page never reloaded.
            cell = page.locator("table.checkpoints a[data-eval=levels]")
            assert cell.inner_text() == "1/4 · 25 % (5–70)"
            assert page.get_by_role("button", name="Cancel").count() == 0
            assert "Last sweep" in panel.inner_text()
            assert fits(page)
            page.screenshot(path=str(tmp_path / "run-sweep-cancelled.png"), full_page=True)
    wait_for(lambda: not ollama.created, "the temporary model to be removed")
