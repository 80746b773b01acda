"""Copy buttons as a user clicks them, with the browser's clipboard: "Copy link" on a run page and
a checkpoint page copies the page's own address (absolute, what a teammate opens), and a
checkpoint's "Copy path" its folder on this machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import KTO_RUN as KTO
from .conftest import VIEWPORTS

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["1280", "390"])
def clip_page(open_page, live_server, request):
    return open_page(*VIEWPORTS[request.param], permissions=["clipboard-read", "clipboard-write"])


def clipboard(page) -> str:
    return page.evaluate("navigator.clipboard.readText()")


def click_copy(page, name: str) -> str:
    page.evaluate("navigator.clipboard.writeText('')")
    button = page.get_by_role("button", name=name, exact=True)
    assert button.is_visible()
    handle = button.element_handle()
    button.click()
    page.wait_for_function("b => b.textContent === 'Copied'", arg=handle)
    return clipboard(page)


def test_copy_link_on_a_run_page_copies_its_shareable_address(clip_page, live_server, three_runs):
    address = f"{live_server.url}/runs/rtx3090_kto/{KTO}/?rank=loss&order=min"
    clip_page.goto(address)
    assert click_copy(clip_page, "Copy link") == address
    # A teammate opening it sees the same page.
    other = clip_page.context.new_page()
    other.goto(clipboard(clip_page))
    assert other.locator("h1").inner_text().startswith(KTO)
    other.close()


def test_a_checkpoint_page_copies_its_link_and_its_path_apart(
    clip_page, live_server, three_runs: Path
):
    address = f"{live_server.url}/runs/rtx3090_kto/{KTO}/checkpoint-50/"
    clip_page.goto(address)
    assert click_copy(clip_page, "Copy link") == address
    path = click_copy(clip_page, "Copy path")
    assert path == clip_page.locator("#ckpt-path").get_attribute("data-path")
    assert Path(path).is_dir() and Path(path).name == "checkpoint-50"
