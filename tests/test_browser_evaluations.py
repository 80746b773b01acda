"""Evaluating a served model as a user does, in headless Chromium: a server's model row →
the form → progress that moves without a reload → the result; and the same pages on a phone."""

from __future__ import annotations

import pytest

from .evaluator_ws import MODEL

# The live server and the worker are other threads and processes: data must be committed.
pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "pw-ada-12345"


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("ada", password=PASSWORD, is_staff=True)


@pytest.fixture
def quick(settings):
    settings.TUNER_REFRESH_SECONDS = 1


def sign_in(page, live_server, next_path: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/?next={next_path}")
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{next_path}")


def fits(page) -> bool:
    return page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )


def test_evaluate_on_a_model_row_then_follow_the_job_to_its_result(
    page, live_server, quick, staff, chat_ollama, workers
):
    workers()
    sign_in(page, live_server, "/backends/")
    row = page.locator("#backends-panels [data-backend=ollama] tr", has_text=MODEL)
    row.get_by_role("link", name="Evaluate").click()
    page.wait_for_url("**/evaluations/new/?backend=ollama&model=*")
    assert page.locator("select[name=backend]").input_value() == "ollama"
    assert page.locator("select[name=model]").input_value() == MODEL
    page.select_option("select[name=prompt_set]", "scored")
    page.get_by_role("button", name="Start evaluation").click()

    page.wait_for_url("**/evaluations/jobs/*/")
    # Generous waits: the worker is another process, on a machine that may be busy.
    page.wait_for_selector("#job [data-progress]:has-text('0 / 5 cases')", timeout=20_000)
    page.evaluate("window.notReloaded = true")
    chat_ollama.gate.release(2)
    page.wait_for_selector(
        "#job [data-progress]:has-text('2 / 5 cases · 2 passed')", timeout=20_000
    )
    chat_ollama.gate.release(3)
    page.wait_for_selector("#job[data-status=succeeded]", timeout=20_000)
    assert page.evaluate("window.notReloaded") is True  # htmx kept it current
    assert "3 of 5 passed" in page.locator(".result-link").inner_text()

    page.locator(".result-link a").click()
    page.wait_for_url("**/evaluations/run_*/")
    facts = page.locator(".facts").inner_text()
    assert MODEL in facts and "scored" in facts and "60%" in facts


def test_the_evaluation_pages_fit_a_phone_screen(
    open_page, live_server, quick, staff, chat_ollama, workers
):
    chat_ollama.gate = None  # answer every case at once
    workers()
    page = open_page(390, 844, is_mobile=True, has_touch=True)
    sign_in(page, live_server, "/backends/")
    assert fits(page), "/backends/"
    page.goto(f"{live_server.url}/evaluations/new/?backend=ollama&model={MODEL}&prompt_set=scored")
    assert fits(page), "/evaluations/new/"
    page.get_by_role("button", name="Start evaluation").tap()
    page.wait_for_selector("#job[data-status=succeeded]", timeout=20_000)
    assert fits(page), "the job's page"
    for path in ("/evaluations/jobs/", "/evaluations/", "/prompt-sets/scored/"):
        page.goto(f"{live_server.url}{path}")
        assert fits(page), path


def test_choosing_another_server_swaps_its_models_in_and_keeps_what_was_typed(
    page, live_server, staff, chat_ollama, serve, settings, eval_workspace
):
    lms = serve("lmstudio", "v1")
    settings.LMSTUDIO_HOST = lms.host
    sign_in(page, live_server, "/evaluations/new/?backend=ollama")
    page.fill("input[name=tags]", "folder")
    sent = []
    page.on("request", lambda r: sent.append(r.url))
    page.select_option("select[name=backend]", "lmstudio")
    page.wait_for_function(
        "document.querySelector('select[name=backend]').value === 'lmstudio'"
        " && !document.querySelector('select[name=model]').innerText.includes('" + MODEL + "')"
    )
    assert page.locator("input[name=tags]").input_value() == "folder"
    swap = [u for u in sent if "/evaluations/new/" in u]
    assert swap and "backend=lmstudio" in swap[-1] and "tags=folder" in swap[-1]
    assert "csrfmiddlewaretoken" not in swap[-1]  # a token never goes into a URL


@pytest.mark.parametrize("width", [1280, 390])
def test_cancel_a_running_job_then_run_it_again(
    open_page, live_server, quick, staff, chat_ollama, workers, width
):
    workers()
    page = open_page(width, 900)
    sign_in(page, live_server, "/evaluations/new/")
    page.goto(f"{live_server.url}/evaluations/new/?backend=ollama&model={MODEL}&prompt_set=scored")
    page.get_by_role("button", name="Start evaluation").click()
    page.wait_for_url("**/evaluations/jobs/*/")
    first = page.url
    chat_ollama.gate.release(1)
    page.wait_for_selector("#job [data-progress]:has-text('1 / 5 cases')", timeout=20_000)
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_selector("#job[data-status=cancelled]", timeout=20_000)
    assert fits(page), "the cancelled job"
    chat_ollama.gate = None  # the next one is answered at once

    page.get_by_role("button", name="Run again").click()
    page.wait_for_url("**/evaluations/jobs/*/")
    assert page.url != first
    page.wait_for_selector("#job[data-status=succeeded]", timeout=30_000)
    assert "3 of 5 passed" in page.locator(".result-link").inner_text()
    assert fits(page), "the job run again"


def test_the_jobs_list_fits_a_desktop_window_with_sweep_and_hub_model_names(
    desktop_or_phone_page, live_server
):
    """A sweep's jobs are named `tuner-<run>-ckpt<step>:latest`: the list wraps them at their
    `-` and `:` rather than pushing its last column out of a 1280 px window."""
    from tuner_site.models import EvaluationJob

    Status = EvaluationJob.Status
    names = [
        "hf.co/professorsynapse/nexus-tools-kto-GGUF:Q4_K_M",
        "tuner-20261130_163528-ckpt300:latest",
        "tuner-20261201_163528-final:latest",
    ]
    for n, name in enumerate(names):
        EvaluationJob.objects.create(
            backend="ollama",
            backend_kind="ollama",
            backend_url="http://127.0.0.1:11434",
            model=name,
            prompt_set="tool_prompts",
            status=Status.SUCCEEDED,
            total=44,
            done=44,
            passed=20,
            result=f"run_20261206_16382{n}",
        )
    page = desktop_or_phone_page
    page.goto(f"{live_server.url}/evaluations/jobs/")
    assert fits(page)
    cells = page.locator("tr[data-job] td.model")
    assert [c.inner_text().split(" · ")[0].replace("\n", "") for c in cells.all()] == names[::-1]
    if page.width == 1280:  # every column in view, none behind a sideways scroll
        wrap = "(() => { const w = document.querySelector('.table-wrap');"
        assert page.evaluate(wrap + " return w.scrollWidth <= w.clientWidth; })()")


def test_a_sweeps_page_gives_served_names_room_on_a_phone(open_page, live_server, use_workspace):
    """`tuner-<run>-ckpt<step>:latest` in a column of its own width, not five lines a row."""
    from tuner_site.models import EvaluationJob, Sweep

    sweep = Sweep.objects.create(
        trainer="rtx3090_sft",
        run="20261130_163528",
        backend="ollama",
        backend_kind="ollama",
        backend_url="http://127.0.0.1:11434",
        base="mistral:7b-instruct",
        prompt_set="tool_prompts",
    )
    for n, step in enumerate((50, 100)):
        EvaluationJob.objects.create(
            sweep=sweep,
            checkpoint=f"checkpoint-{step}",
            backend="ollama",
            backend_kind="ollama",
            backend_url="http://127.0.0.1:11434",
            model=f"tuner-20261130_163528-ckpt{step}:latest",
            prompt_set="tool_prompts",
            status=EvaluationJob.Status.SUCCEEDED,
            total=44,
            done=44,
            passed=14,
            result=f"run_20261206_16372{n}",
            serving="removed",
        )
    page = open_page(390, 844)
    page.goto(f"{live_server.url}/sweeps/{sweep.pk}/")
    assert fits(page)
    served = page.locator("tr[data-checkpoint] td:nth-child(5)").first  # Served as
    assert served.bounding_box()["width"] >= 128  # 8rem: two lines, not one per part
