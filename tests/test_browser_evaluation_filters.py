"""Filtering evaluation results as a user does, at 1280, 1024 and 390 px."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

# The demo's SFT model, as Ollama pulled it.
MODEL = "hf.co/professorsynapse/nexus-tools-sft-GGUF:Q4_K_M"


def test_the_filters_are_visible_say_what_is_shown_and_clear(any_page, live_server, busy_demo):
    any_page.goto(f"{live_server.url}/evaluations/")
    any_page.evaluate("window.notReloaded = true")
    rows = any_page.locator("table.evaluations tbody tr")
    assert rows.count() == 6 and any_page.locator(".filtered").count() == 0
    any_page.select_option("select[name=model]", MODEL)
    any_page.wait_for_url(
        re.compile(
            r"/evaluations/\?model=hf\.co%2Fprofessorsynapse%2Fnexus-tools-sft-GGUF%3AQ4_K_M$"
        )
    )
    any_page.wait_for_selector(".filtered")
    assert rows.count() == 1 and MODEL in rows.first.inner_text()
    status = " ".join(any_page.locator(".filtered").inner_text().split())
    assert status.startswith(f"Showing 1 of 6 results for model {MODEL}.")
    any_page.get_by_role("link", name="Clear filters").click()
    any_page.wait_for_url(re.compile(r"/evaluations/$"))
    any_page.wait_for_function(
        "document.querySelectorAll('table.evaluations tbody tr').length === 6"
    )
    assert any_page.locator("select[name=model]").input_value() == ""
    assert any_page.locator(".filtered").count() == 0
    assert any_page.evaluate("window.notReloaded") is True
    # The filtered address, opened fresh, is the same filtered page.
    any_page.goto(f"{live_server.url}/evaluations/?prompt_set=tool_prompts")
    assert "Showing 5 of 6 results for prompt set tool_prompts" in " ".join(
        any_page.locator(".filtered").inner_text().split()
    )
    assert any_page.locator("select[name=prompt_set]").input_value() == "tool_prompts"
    box = any_page.locator("form.filters").bounding_box()
    assert box["x"] + box["width"] <= any_page.width
