"""The prompt-set admin as a staff user sees it in Chromium: the change list fits a 1280 px
screen, and the description box shows the text the site shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from sampledata import evaluator
from tuner_site.models import PromptSetNote

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "pw-admin-12345"


@pytest.fixture
def signed_in(page, live_server, use_workspace: Path, django_user_model):
    evaluator.write_prompt_sets(use_workspace)
    prompts = use_workspace / "Evaluator" / "prompts"
    # The upstream Evaluator's longest prompt set name, beside the two the demo has.
    archived = prompts / "behavior_prompts_archived_20251202.json"
    archived.write_bytes((prompts / "behavior_prompts.json").read_bytes())
    django_user_model.objects.create_superuser("root", "root@example.lan", PASSWORD)
    page.goto(f"{live_server.url}/admin/login/?next=/admin/tuner_site/promptsetnote/")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/tuner_site/promptsetnote/")
    return page


def test_the_change_list_fits_1280_px(signed_in):
    page = signed_in
    sizes = page.evaluate(
        """() => { const t = document.querySelector('#result_list');
           const box = t.closest('.results') || t.parentElement;
           return {table: t.getBoundingClientRect().width, box: box.clientWidth,
                   page: document.documentElement.scrollWidth}; }"""
    )
    assert sizes["table"] <= sizes["box"] + 1, sizes
    assert sizes["page"] <= 1280, sizes


def test_the_description_box_shows_what_the_site_shows_and_saving_it_keeps_the_default(
    signed_in, live_server
):
    page = signed_in
    shown = page.locator("#result_list tr", has_text="behavior_prompts_archived_20251202")
    box = shown.locator("textarea")
    assert box.input_value() == "Behavior prompts, archived 2025-12-02"
    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/admin/tuner_site/promptsetnote/")
    assert PromptSetNote.objects.get(name="behavior_prompts_archived_20251202").description == ""
    page.goto(f"{live_server.url}/prompt-sets/behavior_prompts_archived_20251202/")
    assert "Behavior prompts, archived 2025-12-02" in page.locator("main").inner_text()
