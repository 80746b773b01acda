"""Configuration pages as a user sees them, at 1280 px and on a 390 px phone: /explore/'s hover
and click, the run list's configuration columns and filter, compare's difference table."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo(settings, demo_workspace: Path) -> Path:
    settings.TUNER_WORKSPACE = demo_workspace
    return demo_workspace


def _no_sideways_scroll(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_explore_hover_names_the_run_and_a_click_opens_it(desktop_or_phone_page, live_server, demo):
    page = desktop_or_phone_page
    page.goto(f"{live_server.url}/explore/?x=lora.r&y=best_score&rule=eval_loss")
    points = page.locator(".xp-point")
    assert points.count() >= 6
    point = points.nth(0)
    label = point.get_attribute("data-label")
    run_id = label.split(" · ")[0]
    box = point.locator("path").bounding_box() or point.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    readout = page.locator(".xp-readout").first
    assert run_id in readout.inner_text() and "lora.r" in readout.inner_text()
    _no_sideways_scroll(page)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_url(f"**/runs/{run_id}/")
    assert page.locator("#configuration").is_visible()


def test_explore_choices_push_a_url_a_teammate_can_open(desktop_or_phone_page, live_server, demo):
    page = desktop_or_phone_page
    page.goto(f"{live_server.url}/explore/")
    page.select_option("select[name=x]", "learning_rate")
    page.wait_for_url("**/explore/?x=learning_rate")
    # The form is swapped with the answer: choose the outcome on the new one.
    page.wait_for_function(
        "!document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')"
    )
    page.select_option("select[name=y]", "metric:eval_loss")
    page.wait_for_url("**/explore/?x=learning_rate&y=metric%3Aeval_loss")
    assert page.locator(".xp-point").count() >= 6
    page.locator(".explore-axes summary").click()
    page.check("input[name=x][value='lora.r']")
    page.wait_for_url("**/explore/?x=learning_rate&x=lora.r&y=metric%3Aeval_loss")
    line = page.locator(".xp-line").first
    line.dispatch_event("pointerover")
    assert "lora.r" in page.locator(".xp-parallel .xp-readout").inner_text()
    _no_sideways_scroll(page)
    page.goto(page.url)  # the shared link opens the same view
    assert page.locator(".xp-line").count() >= 6


def test_compare_opens_with_the_settings_that_differ(
    desktop_or_phone_page, live_server, demo, client
):
    points = client.get("/api/explore/?x=lora.r&x=learning_rate&y=metric:eval_loss").json()
    sweep = {
        p["x"]: p["run"]
        for p in points["points"]
        if p["method"] == "sft" and p["values"]["learning_rate"] == 2e-4 and p["x"] in (8, 16)
    }
    page = desktop_or_phone_page
    page.goto(f"{live_server.url}/compare/?run={sweep[8]}&run={sweep[16]}")
    table = page.locator("table.config-diff")
    assert table.is_visible()
    rows = table.locator("tbody tr")
    assert rows.count() == 2  # lora.r and lora.alpha; the rest folded
    assert rows.nth(0).inner_text().split() == ["lora.r", "8", "16"]
    folded = page.locator(".config-same summary")
    assert "identical settings folded" in folded.inner_text()
    assert not page.get_by_text("learning_rate", exact=True).first.is_visible()
    folded.click()
    assert page.locator(".config-same").get_by_text("learning_rate", exact=True).is_visible()
    # Above the curves, and the page does not scroll sideways on a phone.
    assert table.bounding_box()["y"] < page.locator("figure.chart").first.bounding_box()["y"]
    _no_sideways_scroll(page)


def test_run_list_with_two_setting_columns_and_a_filter(desktop_or_phone_page, live_server, demo):
    page = desktop_or_phone_page
    page.goto(f"{live_server.url}/runs/")
    page.locator(".config-columns summary").click()
    page.check("input[name=col][value='lora.r']")
    page.wait_for_url("**/runs/?col=lora.r")
    page.check("input[name=col][value='learning_rate']")
    page.wait_for_url("**/runs/?col=lora.r&col=learning_rate")
    page.fill("#filter-where", "lora.r>=64")
    page.press("#filter-where", "Enter")
    page.wait_for_url("**/runs/?col=lora.r&col=learning_rate&where=lora.r%3E%3D64")
    cells = page.locator("td.c-cfg")
    assert cells.count() == 2  # the one run of rank 64: its rank and its learning rate
    assert "64" in cells.nth(0).inner_text() and "2e-4" in cells.nth(1).inner_text()
    assert cells.nth(0).is_visible()
    _no_sideways_scroll(page)
    page.fill("#filter-where", "lora.r>=32")
    page.press("#filter-where", "Enter")
    page.wait_for_url("**where=lora.r%3E%3D32")
    if page.width == 1280:
        page.click("th.c-cfg >> text=lora.r")  # sorts by the column
        page.wait_for_url("**sort=lora.r**")
        ranks = [int(t.split()[-1]) for t in page.locator("td.c-cfg").all_inner_texts()[::2]]
        assert ranks == sorted(ranks)
