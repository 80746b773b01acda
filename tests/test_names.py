"""Odd names: every name the dashboard lists opens, and what hides or reorders text is shown.

A newline, a backslash or a right-to-left override (`…_\u202egnp.exe` reads as `…_exe.png`) in
a run, trainer, prompt-set or result name: listed with a link that opens, drawn escaped.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from html import unescape
from pathlib import Path
from urllib.parse import urlencode

import pytest

from sampledata import evaluator
from sampledata import runs as wb
from tuner_site.formatting import visible

from .conftest import age

pytestmark = pytest.mark.django_db

ODD = {
    "newline": "run\nname",
    "backslash": "run\\name",
    "rtl override": "report_\u202egnp.exe",
    "isolate": "a\u2067b\u2069c",
    "tab": "run\tname",
    "no-break space": "run\u00a0name",
    "zero width": "run\u200bname",
    "bell": "run\x07name",
    "emoji": "run 🚀 name",
    "percent and query": "run%2F?x=1#y",
    "spaces": " padded ",
}
HIDING = re.compile("[\u202a-\u202e\u2066-\u2069\u200b-\u200f\x00-\x08\x0b-\x1f\x7f]")


def _runs(root: Path, names: list[str], platform: str = "rtx3090") -> None:
    for i, name in enumerate(names):
        out = wb.output_dir(root, "sft", platform)
        wb.make_run(
            root,
            "sft",
            datetime(2025, 1, 1, 0, 0, i),
            max_steps=10,
            save_every=5,
            seed=i,
            platform=platform,
        )
        made = out / datetime(2025, 1, 1, 0, 0, i).strftime("%Y%m%d_%H%M%S")
        if made.name != name:
            made.rename(out / name)
    age(root / "Trainers", 7200)


def _hrefs(html: str) -> list[str]:
    return [unescape(h) for h in re.findall(r'href="([^"]+)"', html)]


def _opens_every_link(client, page: str, prefix: str) -> list[str]:
    html = client.get(page).content.decode()
    links = sorted({h for h in _hrefs(html) if h.startswith(prefix) and h != prefix})
    for link in links:
        response = client.get(link)
        assert response.status_code == 200, (page, link, response.status_code)
        assert client.get("/api" + link.split("?")[0]).status_code == 200, link
    return links


def test_every_listed_run_opens_whatever_its_name(client, use_workspace):
    _runs(use_workspace, list(ODD.values()))
    data = json.loads(client.get("/api/runs/").content)
    listed = {r["run"] for r in data["runs"]}
    assert listed == set(ODD.values())
    for r in data["runs"]:
        assert client.get(r["url"]).status_code == 200, r["run"]
        assert client.get("/api" + r["url"]).status_code == 200, r["run"]
        page = json.loads(client.get("/api" + r["url"]).content)
        assert page["run"] == r["run"]  # JSON carries the real name
        for c in page["checkpoints"]:
            assert client.get(c["url"]).status_code == 200, c["url"]
    links = _opens_every_link(client, "/runs/", "/runs/")
    assert len([link for link in links if link.count("/") == 4]) == len(ODD)
    _opens_every_link(client, "/", "/runs/")


@pytest.mark.parametrize("platform", ["rtx\u202e3090", "rtx\\3090", "rtx 3090"])
def test_every_listed_trainer_opens_whatever_its_name(client, use_workspace, platform):
    _runs(use_workspace, ["20250101_000000"], platform=platform)
    data = json.loads(client.get("/api/runs/").content)
    assert [r["trainer"] for r in data["runs"]] == [f"{platform}_sft"]
    url = data["runs"][0]["url"]
    assert client.get(url).status_code == 200 and client.get("/api" + url).status_code == 200
    assert client.get("/runs/", {"trainer": f"{platform}_sft"}).status_code == 200
    _opens_every_link(client, "/runs/", "/runs/")
    _opens_every_link(client, "/", "/runs/")


def test_a_name_that_is_not_text_is_not_listed_and_breaks_nothing(client, use_workspace):
    _runs(use_workspace, ["20250101_000000"])
    out = wb.output_dir(use_workspace, "sft")
    os.rename(out / "20250101_000000", os.fsencode(out) + b"/run\xff\xfe")
    _runs(use_workspace, ["fine"])
    prompts = use_workspace / "Evaluator" / "prompts"
    evaluator.write_prompt_sets(use_workspace)
    os.rename(prompts / "tool_prompts.json", os.fsencode(prompts) + b"/set\xff.json")
    for url in ("/", "/runs/", "/api/runs/", "/prompt-sets/", "/api/prompt-sets/"):
        assert client.get(url).status_code == 200, url
    data = json.loads(client.get("/api/runs/").content)
    assert [r["run"] for r in data["runs"]] == ["fine"]
    _opens_every_link(client, "/runs/", "/runs/")
    _opens_every_link(client, "/prompt-sets/", "/prompt-sets/")


def test_prompt_sets_and_results_with_odd_names_open(client, use_workspace):
    evaluator.write_prompt_sets(use_workspace)
    prompts = use_workspace / "Evaluator" / "prompts"
    for i, name in enumerate(ODD.values()):
        (prompts / f"{name}.json").write_text(json.dumps([{"question": f"q{i}", "tags": ["t"]}]))
        evaluator.write_evaluation(
            use_workspace, name, "m:q8", name, [("a", True, ["t"])], datetime(2025, 1, 1, 0, i)
        )
    sets = json.loads(client.get("/api/prompt-sets/").content)["prompt_sets"]
    assert set(ODD.values()) <= {s["name"] for s in sets}
    for s in sets:
        assert client.get(s["url"]).status_code == 200, s["name"]
    results = json.loads(client.get("/api/evaluations/").content)["evaluations"]
    assert {e["name"] for e in results} == set(ODD.values())
    for e in results:
        assert client.get(e["url"]).status_code == 200, e["name"]
    _opens_every_link(client, "/prompt-sets/", "/prompt-sets/")
    _opens_every_link(client, "/evaluations/", "/evaluations/")


def test_hiding_and_reordering_characters_are_drawn_escaped_on_every_page(client, use_workspace):
    _runs(use_workspace, list(ODD.values()))
    evaluator.write_prompt_sets(use_workspace)
    (use_workspace / "Evaluator" / "prompts" / "x_\u202egnp.exe.json").write_text('["q"]')
    evaluator.write_evaluation(
        use_workspace,
        "r\u202eesu",
        "m\u202edl",
        "x_\u202egnp.exe",
        [("a", True, [])],
        datetime(2025, 1, 1),
    )
    run_url = json.loads(client.get("/api/runs/").content)["runs"][0]["url"]
    pages = ["/", "/runs/", "/prompt-sets/", "/evaluations/", run_url]
    runs = json.loads(client.get("/api/runs/").content)["runs"]
    compare = urlencode([("run", f"{r['trainer']}/{r['run']}") for r in runs[:8]])
    pages += [f"{run_url}checkpoint-5/", f"/compare/?{compare}", "/backends/"]
    pages += _opens_every_link(client, "/runs/", "/runs/")
    pages += _opens_every_link(client, "/prompt-sets/", "/prompt-sets/")
    pages += _opens_every_link(client, "/evaluations/", "/evaluations/")
    for page in pages:
        html = client.get(page).content.decode()
        # Form values carry the real name back; nothing else may hold a hiding character.
        drawn = re.sub(r' (value|data-[\w-]+)="[^"]*"', "", html)
        m = HIDING.search(drawn)
        assert not m, (page, drawn[max(0, m.start() - 80) : m.end() + 20] if m else "")
    listing = client.get("/runs/").content.decode()
    assert "report_\\u202egnp.exe" in listing and "run\\nname" in listing
    assert "run\\u200bname" in listing and "run\\x07name" in listing
    assert "run 🚀 name" in listing and "run\\name" in listing


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("report_\u202egnp.exe", "report_\\u202egnp.exe"),
        ("a\nb", "a\\nb"),
        ("a\tb", "a\\tb"),
        ("a\x00b", "a\\x00b"),
        ("a\u2028b", "a\\u2028b"),
        ("\U000e0041tag", "\\U000e0041tag"),
        ("plain name-1.2", "plain name-1.2"),
        ("中文 🚀", "中文 🚀"),
        (None, ""),
    ],
)
def test_visible_spells_out_what_would_hide_or_reorder_text(name, shown):
    assert visible(name) == shown


def test_the_cli_tables_show_names_escaped_too(use_workspace, capsys):
    from io import StringIO

    from django.core.management import call_command

    _runs(use_workspace, [ODD["rtl override"], ODD["newline"]])
    out = StringIO()
    call_command("discover", "runs", stdout=out)
    text = out.getvalue()
    assert "report_\\u202egnp.exe" in text and "run\\nname" in text
    assert not HIDING.search(text)


def test_the_background_check_answers_each_log_even_with_a_newline_or_tab_in_its_name(tmp_path):
    from discovery.logindex import verify_file
    from discovery.verify import Worker

    root = tmp_path.resolve()
    logs = []
    for i, name in enumerate(["run\nA", "run\tB", "runC"]):
        log = root / name / "training.jsonl"
        log.parent.mkdir()
        log.write_text("".join(json.dumps({"step": s, "loss": i + s / 10}) + "\n" for s in (1, 2)))
        logs.append(str(log))
    worker = Worker()
    answers = [worker.check(log, str(root), [1]) for log in logs]
    # Each answer is its own log's: a request split at the newline would shift every later one.
    assert answers == [verify_file(log, str(root), [1]) for log in logs]
    assert all(a is not None for a in answers) and len({repr(a) for a in answers}) == 3
