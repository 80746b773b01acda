"""Following the chain as a user does: run page → served model → evaluation → back to the run,
and comparing two evaluations; at desktop and phone widths, the page never scrolls sideways."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import fake_servers as fs
from .lineage_fixtures import (
    KTO_NEW_ID,
    KTO_OLD_ID,
    LOCAL_SFT,
    SFT_ID,
    SFT_MODEL,
    Chain,
    hash_all,
    make_chain,
    ollama,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def served_chain(settings, use_workspace: Path) -> Iterator[Chain]:
    chain = make_chain(use_workspace)
    hash_all(chain.root)
    server: fs.FakeServer = ollama(chain)
    settings.OLLAMA_HOST = server.host
    yield chain
    server.stop()


def no_sideways_scroll(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{page.url} is {width} px wide"


def test_following_a_run_to_its_served_model_and_evaluation_and_back(
    desktop_or_phone_page, live_server, served_chain
):
    page = desktop_or_phone_page
    page.goto(f"{live_server.url}/runs/{SFT_ID}/")
    panel = page.locator("#run-lineage")
    assert "Published as" in panel.inner_text()
    no_sideways_scroll(page)
    # The model's own page (the repo's name in the upload line links to the hub instead).
    panel.locator("table.run-models").get_by_role(
        "link", name="professorsynapse/nexus-tools-sft"
    ).click()
    page.wait_for_url(re.compile(rf"/models/{SFT_MODEL}/$"))
    served = page.locator("#served tr", has_text=LOCAL_SFT)
    assert "exact" in served.inner_text() and "loaded" in served.inner_text()
    no_sideways_scroll(page)

    page.locator("#evaluations").get_by_role("link", name="eval_sft").click()
    page.wait_for_url(re.compile(r"/evaluations/eval_sft/$"))
    source = page.locator(".eval-source")
    assert "exact" in source.inner_text() and "final_model" in source.inner_text()
    no_sideways_scroll(page)

    source.get_by_role("link", name=SFT_ID).click()
    page.wait_for_url(re.compile(rf"/runs/{SFT_ID}/$"))
    assert page.locator("#run-lineage").is_visible()


def test_comparing_an_evaluation_with_the_previous_one_shows_what_regressed(
    desktop_or_phone_page, live_server, served_chain
):
    page = desktop_or_phone_page
    page.goto(f"{live_server.url}/evaluations/eval_kto_new/")
    page.locator(".compare-with").get_by_role("link", name="eval_kto_old").click()
    page.wait_for_url(re.compile(r"/evaluations/compare/\?e=eval_kto_old&e=eval_kto_new$"))
    no_sideways_scroll(page)
    runs = page.locator("table.eval-compare tr", has_text="From run").inner_text()
    assert runs.index(KTO_OLD_ID) < runs.index(KTO_NEW_ID)
    regressed = page.locator("#differing tr.change-regressed")
    fixed = page.locator("#differing tr.change-fixed")
    assert regressed.count() == 1 and "tool_003" in regressed.inner_text()
    assert fixed.count() == 1 and "tool_002" in fixed.inner_text()
    # A third result, added from the page, keeps the first two in place.
    page.select_option("form.add-eval select[name=e]", "eval_sft")
    page.get_by_role("button", name="Add").click()
    page.wait_for_url(re.compile(r"e=eval_kto_old&e=eval_kto_new&e=eval_sft$"))
    assert page.locator("table.eval-compare").first.locator("thead th").count() == 4
    no_sideways_scroll(page)
