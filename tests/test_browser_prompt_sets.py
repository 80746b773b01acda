"""The prompt-set list and its tag filter, clicked in headless Chromium."""

from __future__ import annotations

import re

import pytest

from sampledata import evaluator

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_user_opens_a_set_from_the_list_and_filters_it_by_tag(page, live_server, use_workspace):
    evaluator.write_prompt_sets(use_workspace)
    page.goto(f"{live_server.url}/prompt-sets/")
    rows = page.locator("table.prompt-sets tbody tr")
    assert rows.count() == 2
    assert "12" in rows.nth(0).inner_text()
    page.click("text=tool_prompts")
    page.wait_for_url("**/prompt-sets/tool_prompts/")
    assert page.locator("table.cases tbody tr").count() == 12
    page.evaluate("window.notReloaded = true")
    page.click(".tag-filter [data-tag=folder]")
    page.wait_for_url(re.compile(r"\?tag=folder$"))
    page.wait_for_function("document.querySelectorAll('table.cases tbody tr').length === 3")
    assert "tagged folder" in page.locator("#cases").inner_text()
    assert page.evaluate("window.notReloaded") is True
    page.go_back()
    page.wait_for_url("**/prompt-sets/tool_prompts/")
