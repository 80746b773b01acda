"""Long names are never cut silently, at 1280 and 390 px: real Hugging Face repo ids and GGUF tags
(the longest found in public READMEs) on /evaluations/, /backends/, a model's page, a prompt
set's page and evaluation compare either show in full (wrapping at `/`, `:`, `-`, `_`) or in a
title reached by hover and focus; rows that differ only at the end are told apart; and no page
scrolls sideways."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from sampledata import evaluator, upload

from . import fake_servers as fs
from .lineage_fixtures import KTO_REPO, Chain, hash_all, make_chain

pytestmark = pytest.mark.django_db(transaction=True)

# Real names people pull with `ollama run hf.co/...` (from public READMEs), and the kind of
# pair the issue saw cut to the same text: the part that differs is at the end.
LONG_MODELS = [
    "hf.co/mradermacher/Qwen3.5-40B-Claude-4.6-Opus-Deckard-Heretic-Uncensored-Thinking-GGUF:Q4_K_M",
    "hf.co/mradermacher/Huihui-Qwen3-Coder-30B-A3B-Instruct-abliterated-i1-GGUF:latest",
    "hf.co/DavidAU/Mistral-Small-3.1-24B-Instruct-2503-MAX-NEO-Imatrix-GGUF:IQ3_S-imat",
    "hf.co/mradermacher/Josiefied-Qwen3-30B-A3B-abliterated-v2-GGUF:Q4_K_M",
    "hf.co/mradermacher/Josiefied-Qwen3-30B-A3B-abliterated-v2-GGUF:Q5_K_M",
    f"hf.co/{KTO_REPO}-GGUF:Q4_K_M",
    f"hf.co/{KTO_REPO}-GGUF:Q8_0",
]
# The upstream Evaluator's longest prompt set name.
LONG_SET = "behavior_prompts_archived_20251202"
# A repo id as long as real ones get, published from a run of this workspace.
LONG_REPO = "professorsynapse/nexus-tools-qwen3-30b-a3b-instruct-kto-toolcalling-v2"


@pytest.fixture
def long_names(settings, use_workspace: Path) -> Iterator[Chain]:
    chain = make_chain(use_workspace)
    upload.write_upload(
        chain.kto_new / "checkpoints" / "checkpoint-75",
        LONG_REPO,
        uploaded_at=datetime(2025, 11, 8, 9),
    )
    prompts = use_workspace / "Evaluator" / "prompts"
    (prompts / f"{LONG_SET}.json").write_bytes((prompts / "behavior_prompts.json").read_bytes())
    cases = [(f"IH_{n:03d}", n % 3 != 0, ["behavior"]) for n in range(8)]
    for i, model in enumerate(LONG_MODELS):
        evaluator.write_evaluation(
            use_workspace, f"eval_long_{i}", model, LONG_SET, cases, datetime(2025, 11, 9, i)
        )
    hash_all(chain.root)
    tags = [fs.ollama_model(m, f"{i:02d}" * 32) for i, m in enumerate(LONG_MODELS)]
    show = {m: fs.modelfile(m, f"{i + 50:02d}" * 32) for i, m in enumerate(LONG_MODELS)}
    ps = {"models": [{**tags[0], "size_vram": 7_000_000_000, "context_length": 8192}]}
    server = fs.FakeServer(
        "ollama", routes={"/api/tags": {"models": tags}, "/api/ps": ps}, show=show
    ).start()
    settings.OLLAMA_HOST = server.host
    yield chain
    server.stop()


# Every element that holds a whole name (the smallest one), outside form controls: is its text
# laid out inside every box that clips it, or is it in a title that hover and focus reach?
# A table that scrolls sideways (with its "more columns" hint) is not a cut.
CUT_NAMES = """names => {
  const skip = "select, option, script, style, svg, template, datalist, head";
  const all = [...document.body.querySelectorAll("*")].filter((el) => !el.closest(skip));
  const cut = [], shown = {};
  for (const name of names) {
    shown[name] = 0;
    const holders = all.filter((el) => el.textContent.includes(name)
      && ![...el.children].some((c) => c.textContent.includes(name)));
    for (const el of holders) {
      if (!el.getClientRects().length) continue;
      shown[name]++;
      const range = document.createRange();
      range.selectNodeContents(el);
      const rects = [...range.getClientRects()].filter((r) => r.width > 0);
      let clipped = false;
      for (let a = el; a && a !== document.body; a = a.parentElement) {
        const style = getComputedStyle(a);
        if (["visible", "auto", "scroll"].includes(style.overflowX)) continue;
        const box = a.getBoundingClientRect();
        if (rects.some((r) => r.right > box.right + 1 || r.left < box.left - 1)) clipped = true;
      }
      const titled = el.closest("[title]");
      const reachable = titled && titled.title === name && el.closest("a, button, [tabindex]");
      const where = el.tagName.toLowerCase() + "." + el.className;
      if (clipped && !reachable) cut.push(name + " in " + where);
    }
  }
  return { cut, shown };
}"""


def check(page, url: str, names: list[str]) -> None:
    page.goto(url)
    found = page.evaluate(CUT_NAMES, names)
    assert not found["cut"], f"{url} at {page.viewport_size['width']} px: {found['cut']}"
    assert all(found["shown"].values()), f"{url}: not on the page: {found['shown']}"
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{url} is {width} px wide"


@pytest.mark.parametrize("width", [1280, 390])
def test_long_names_are_whole_on_every_page_that_lists_them(
    open_page, live_server, long_names, width
):
    page = open_page(width, 900)
    base = live_server.url
    check(page, f"{base}/evaluations/", [*LONG_MODELS, LONG_SET])
    check(page, f"{base}/backends/", LONG_MODELS)
    check(page, f"{base}/prompt-sets/{LONG_SET}/", [*LONG_MODELS, LONG_SET])
    check(page, f"{base}/models/", [*LONG_MODELS, LONG_REPO])
    longest = page.locator("a.model", has_text="Qwen3.5-40B").first.get_attribute("href")
    check(page, base + longest, [LONG_MODELS[0]])
    published = page.locator("a.model", has_text=LONG_REPO).first
    if not published.count():
        page.goto(f"{base}/models/")
        published = page.locator("a.model", has_text="toolcalling").first
    check(page, base + published.get_attribute("href"), [LONG_REPO])
    pair = "&".join(f"e=eval_long_{i}" for i in (3, 4, 0, 5))
    check(page, f"{base}/evaluations/compare/?{pair}", [LONG_MODELS[i] for i in (3, 4, 0, 5)])


def test_a_names_text_copies_as_it_is(page, live_server, long_names):
    # The break opportunities add no character: what is selected and copied is the name.
    page.goto(f"{live_server.url}/backends/")
    cell = page.locator("td.model", has_text="Qwen3.5-40B").first
    assert cell.inner_text().split("\n")[0].replace("\u200b", "") == LONG_MODELS[0]
    assert (
        page.evaluate(
            """el => { const r = document.createRange(); r.selectNodeContents(el);
           getSelection().removeAllRanges(); getSelection().addRange(r);
           return getSelection().toString(); }""",
            cell.element_handle(),
        ).strip()
        == LONG_MODELS[0]
    )
