"""Evaluation results: discovered from Evaluator/results/, listed, filtered, linked to sets."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from discovery.evaluations import get_evaluation, list_evaluations
from sampledata import evaluator

from .conftest import SHARED_UPSTREAM, needs_upstream

REAL = SHARED_UPSTREAM / "Evaluator" / "results" / "full_coverage.json"
pytestmark = pytest.mark.django_db


@pytest.fixture
def results(use_workspace: Path) -> Path:
    evaluator.write_prompt_sets(use_workspace)
    cases = [("tool_000", True, ["search"]), ("tool_001", False, ["create", "folder"])]
    evaluator.write_evaluation(
        use_workspace, "sft_run", "nexus-sft:q8", "tool_prompts", cases, datetime(2025, 11, 20, 9)
    )
    evaluator.write_evaluation(
        use_workspace,
        "kto_run",
        "nexus-kto:q8",
        "tool_prompts",
        cases[:1],
        datetime(2025, 11, 21, 9),
    )
    (use_workspace / "Evaluator" / "results" / "notes.json").write_text('["not a result"]')
    return use_workspace


@needs_upstream
def test_it_reads_the_real_upstream_result(workspace):
    folder = workspace / "Evaluator" / "results"
    folder.mkdir(parents=True)
    shutil.copy(REAL, folder)
    e = get_evaluation(workspace, "full_coverage")
    assert e.model == "huggingface.co/professorsynapse/nexus-tools-v0.0.1-Q8_0-GGUF:latest"
    assert e.prompt_set == "full_coverage"  # from a Windows path
    assert (e.total, e.passed, e.pass_rate) == (47, 0, 0.0)
    assert e.by_tag["memoryManager"]["total"] == 12
    first = e.cases[0]
    assert first.passed is False and first.latency_s == pytest.approx(12.1997, abs=1e-3)
    assert first.tags == ("agentManager", "single-tool")  # stored as a Python repr string
    assert first.issues == ("Expected tools not called: agentManager_batchExecutePrompt",)
    # What was asked and answered, so a failure can be read without opening the file.
    assert first.question.startswith('Send a single "housekeeping reminder" prompt')
    assert first.response.startswith("The following agents have not responded")
    assert first.tools_called == ()
    longest = max(e.cases, key=lambda c: len(c.response or ""))
    assert longest.response.endswith("… (856 more characters)")  # 4,856 written


def test_results_are_listed_newest_first_and_broken_files_say_why(results):
    found = list_evaluations(results)
    assert [e.name for e in found][:2] == ["kto_run", "sft_run"]
    assert "not an evaluation result" in found[-1].error


def test_the_pages_and_json_show_pass_rates(client, results):
    html = client.get("/evaluations/").content.decode()
    assert "nexus-sft:q8" in html and "50%" in html and "not an evaluation result" in html
    data = json.loads(client.get("/api/evaluations/").content)["evaluations"]
    sft = next(e for e in data if e["name"] == "sft_run")
    assert (sft["pass_rate"], sft["passed"], sft["total"], sft["prompt_set"]) == (
        0.5,
        1,
        2,
        "tool_prompts",
    )
    detail = json.loads(client.get("/api/evaluations/sft_run/").content)
    assert [c["case_id"] for c in detail["cases"]] == ["tool_000", "tool_001"]
    assert detail["by_tag"]["search"]["pass_rate"] == 1.0
    page = client.get("/evaluations/sft_run/").content.decode()
    assert page.index("tool_001") < page.index("tool_000")  # failures first
    assert 'href="/prompt-sets/tool_prompts/"' in page


def test_filters_by_model_and_prompt_set(client, results):
    data = json.loads(client.get("/api/evaluations/?model=nexus-kto:q8").content)
    assert [e["name"] for e in data["evaluations"]] == ["kto_run"]
    assert client.get("/api/evaluations/?model=nope").status_code == 400
    assert client.get("/evaluations/?prompt_set=nope").status_code == 400


def test_the_list_shows_its_filters_and_says_when_it_is_filtered(client, results):
    html = client.get("/evaluations/").content.decode()
    assert '<select name="model">' in html and '<select name="prompt_set">' in html
    assert "Showing" not in html and "Clear filters" not in html
    html = client.get("/evaluations/?model=nexus-kto:q8").content.decode()
    assert "Showing 1 of 3 results for" in html and ">nexus-kto:q8</strong>" in html
    assert '<option value="nexus-kto:q8" selected>' in html
    assert 'href="/evaluations/" hx-get="/evaluations/">Clear filters' in html
    html = client.get("/evaluations/?model=nexus-sft:q8&prompt_set=tool_prompts").content.decode()
    assert "Showing 1 of 3 results for" in html and "and prompt set <strong>tool_prompts" in html


def test_a_filter_fragment_pushes_the_url_without_empty_fields(client, results):
    response = client.get(
        "/evaluations/?model=&prompt_set=tool_prompts", headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="evaluation-results"') and "<html" not in html
    assert response["HX-Push-Url"] == "/evaluations/?prompt_set=tool_prompts"


def test_each_failed_case_gives_the_reason_the_summary_counts(use_workspace):
    from collections import Counter

    evaluator.write_prompt_sets(use_workspace)
    cases = [(f"tool_{n:03d}", n % 2 == 0, ["search"]) for n in range(6)]
    tools = {"tool_001": ["createFolder"], "tool_003": ["createFolder"], "tool_005": ["readFile"]}
    evaluator.write_evaluation(
        use_workspace, "r", "m:q8", "tool_prompts", cases, datetime(2025, 11, 20), tools
    )
    e = get_evaluation(use_workspace, "r")
    counted = Counter(i for c in e.cases for i in c.issues)
    assert (
        dict(e.failure_reasons)
        == counted
        == {
            "Expected tools not called: createFolder": 2,
            "Expected tools not called: readFile": 1,
        }
    )


def test_a_prompt_sets_page_lists_the_evaluations_that_used_it(client, results):
    html = client.get("/prompt-sets/tool_prompts/").content.decode()
    assert "Evaluations with this set" in html and "kto_run" in html and "sft_run" in html
    assert (
        "Evaluations with this set"
        not in client.get("/prompt-sets/behavior_prompts/").content.decode()
    )


@pytest.mark.parametrize("name", ["nope", "..%2f..%2fsecret", "notes.json", "%00"])
def test_unknown_results_are_404s(client, results, name):
    assert client.get(f"/evaluations/{name}/").status_code == 404
    assert client.get(f"/api/evaluations/{name}/").status_code == 404


def test_discover_evaluations_prints_a_table_and_the_apis_json(client, results, capfdbinary):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("discover", "evaluations", stdout=out)
    assert "nexus-sft:q8" in out.getvalue() and "1/2 (50%)" in out.getvalue()
    call_command("discover", "evaluations", "--json")
    assert json.loads(capfdbinary.readouterr().out) == json.loads(
        client.get("/api/evaluations/").content
    )


def test_the_overview_shows_the_latest_evaluations(client, results):
    html = client.get("/").content.decode().replace("<wbr>", "")  # break points in names
    panel = html[html.index('id="evaluations-compact"') :]
    assert panel.index("nexus-kto:q8") < panel.index("nexus-sft:q8") and "50%" in panel


def test_a_result_name_a_running_job_reserved_is_not_listed_until_written(results):
    folder = results / "Evaluator" / "results"
    (folder / "run_20251201_163005.json").touch()  # created empty, as a job reserves it
    assert "run_20251201_163005" not in [e.name for e in list_evaluations(results)]
    assert get_evaluation(results, "run_20251201_163005") is None
