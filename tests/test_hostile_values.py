"""Hostile values in files: numbers no float holds, malformed results, JSON nested deep.

Every page and JSON twin answers 200 with the rest of the run or result intact; what cannot be
read is missing (a number) or listed with its error (a result).
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from pathlib import Path

import pytest

from sampledata import evaluator
from sampledata import runs as wb
from tuner_site.charts import line_chart

from .conftest import age, started

pytestmark = pytest.mark.django_db

RUN = "20251101_100000"
RUN_URL = f"/runs/rtx3090_sft/{RUN}/"
HUGE = "9" * 401  # an integer no float holds
PAGES = ("/", "/api/", "/runs/", "/api/runs/", RUN_URL, "/api" + RUN_URL)


def _run(root: Path) -> Path:
    run = wb.make_run(root, "sft", started(RUN), max_steps=100, save_every=25, eval_every=25)
    age(root / "Trainers", 7200)
    return run


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _raw_replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def _answers(client, urls=PAGES) -> None:
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)


def _log(run: Path) -> Path:
    return next((run / "logs").glob("training_2*.jsonl"))


def test_a_401_digit_integer_in_a_log_line_is_missing_not_a_500(client, use_workspace):
    run = _run(use_workspace)
    # At a checkpoint's step (what the tables read) and at the last step, beside a NaN.
    with _log(run).open("a") as f:
        f.write(f'{{"step": 25, "grad_norm": {HUGE}, "eval_accuracy": 0.5}}\n')
        f.write(f'{{"step": 100, "loss": -{HUGE}, "kl": NaN, "eval_accuracy": 0.75}}\n')
    _answers(client)
    ckpt = json.loads(client.get(f"/api/runs/rtx3090_sft/{RUN}/checkpoint-25/").content)
    # The huge value is missing, so the step keeps what earlier lines logged; the rest counts.
    assert ckpt["metrics"]["eval_accuracy"] == 0.5 and ckpt["metrics"]["grad_norm"] < 10
    data = json.loads(client.get("/api" + RUN_URL).content)
    assert data["skipped_log_lines"] == 0
    series = json.loads(client.get(f"/api/runs/rtx3090_sft/{RUN}/metrics/").content)["series"]
    assert all(v is None or abs(v) < 1e300 for v in series["loss"])
    assert series["eval_accuracy"][-1] == 0.75


@pytest.mark.parametrize("field", ["best_metric", "global_step", "max_steps"])
def test_a_401_digit_integer_in_trainer_state_is_missing_not_a_500(client, use_workspace, field):
    run = _run(use_workspace)
    state = run / "checkpoints" / "checkpoint-100" / "trainer_state.json"
    _raw_replace(state, f'"{field}": ', f'"{field}": {HUGE}, "was_{field}": ')
    _answers(client)
    data = json.loads(client.get("/api" + RUN_URL).content)
    assert data["last_step"] == 100


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("training", "learning_rate"),
        ("training", "max_steps"),
        ("training", "batch_size"),
        ("results", "training_time_seconds"),
        ("results", "final_step"),
        ("lora", "rank"),
    ],
)
@pytest.mark.parametrize("sign", ["", "-"])
def test_a_401_digit_integer_in_the_lineage_is_missing_not_a_500(
    client, use_workspace, section, key, sign
):
    run = _run(use_workspace)
    lineage = run / "training_lineage.json"
    _edit_json(lineage, lambda d: d[section].__setitem__(key, "PLACEHOLDER"))
    _raw_replace(lineage, '"PLACEHOLDER"', sign + HUGE)
    _answers(client)
    data = json.loads(client.get("/api" + RUN_URL).content)
    assert data["lineage"][section][key] is None  # the number rule, in the JSON too
    assert data["header"]["base_model"]  # the rest of the lineage is read
    html = client.get(RUN_URL).content.decode()
    assert HUGE[:50] not in html


def test_a_401_digit_integer_in_an_adapter_config_is_not_a_500(client, use_workspace):
    run = _run(use_workspace)
    adapter = run / "checkpoints" / "checkpoint-25" / "adapter_config.json"
    _raw_replace(adapter, '"r": 32', f'"r": {HUGE}')
    _answers(client, (f"{RUN_URL}checkpoint-25/", f"/api{RUN_URL}checkpoint-25/"))
    data = json.loads(client.get(f"/api{RUN_URL}checkpoint-25/").content)
    assert data["adapter"]["r"] is None and data["adapter"]["lora_alpha"] == 64


def test_a_401_digit_integer_in_an_mlx_metric_is_missing_not_a_500(client, use_workspace):
    folder = wb.make_mlx_trainer(use_workspace, [(started(RUN), 20, True)])
    log = folder / "logs" / "training.jsonl"
    lines = log.read_text().splitlines()
    last_metrics = max(i for i, line in enumerate(lines) if '"METRICS"' in line)
    lines[last_metrics] = lines[last_metrics].replace('"loss": ', f'"loss": {HUGE}, "was": ', 1)
    log.write_text("\n".join(lines) + "\n")
    runs = json.loads(client.get("/api/runs/?type=mlx").content)["runs"]
    assert len(runs) == 1
    url = runs[0]["url"]
    _answers(client, ("/", "/runs/", "/api/runs/", url, "/api" + url, f"/api{url}metrics/"))


def test_a_chart_spanning_every_finite_float_draws(client, use_workspace):
    run = _run(use_workspace)
    with _log(run).open("a") as f:
        f.write('{"step": 101, "loss": -1e308}\n{"step": 102, "loss": 1e308}\n')
        f.write('{"step": 103, "loss": 1.7976931348623157e308}\n{"step": 104, "loss": -1.7e308}\n')
    _answers(client, (RUN_URL, f"/api{RUN_URL}metrics/", f"/compare/?run=rtx3090_sft/{RUN}"))
    html = client.get(RUN_URL).content.decode()
    drawn = re.findall(r' d="([^"]*)"', html) + re.findall(r' [xy][12]?="([^"]*)"', html)
    assert drawn and not any(re.search(r"nan|inf", d, re.IGNORECASE) for d in drawn)
    numbers = [float(n) for d in drawn for n in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", d)]
    assert numbers and all(math.isfinite(n) for n in numbers)
    assert ">1e308<" in html and ">-1e308<" in html  # tick labels


@pytest.mark.parametrize(
    "values",
    [
        [-1e308, 1e308],
        [-1.7976931348623157e308, 1.7976931348623157e308],
        [5e-324, 0.0],
        [5e-324, 1e-323, 1.5e-323],
        [1e308] * 3,
        [0.0, 1e-300, 1e300],
    ],
)
def test_line_chart_ticks_and_lines_stay_on_the_plot_for_any_finite_range(values):
    chart = line_chart("loss", list(range(len(values))), {"loss": values})
    assert chart is not None and chart.y_ticks
    for tick in chart.y_ticks:
        assert 0 <= tick.pos <= 100  # percent of the plot's height
    for s in chart.series:
        for line in (s.raw, s.smooth, s.markers):
            for x, y in re.findall(r"[ML](-?[\d.]+),(-?[\d.]+)", line):
                assert 0 <= float(x) <= chart.width
                assert 0 <= float(y) <= chart.height


# Evaluation results -------------------------------------------------------------------------


def _result(root: Path, name: str = "hostile") -> Path:
    evaluator.write_prompt_sets(root)
    cases = [("tool_000", True, ["search"]), ("tool_001", False, ["create", "folder"])]
    return evaluator.write_evaluation(
        root, name, "nexus-sft:q8", "tool_prompts", cases, datetime(2025, 11, 20, 9)
    )


EVAL_PAGES = (
    "/",
    "/api/",
    "/evaluations/",
    "/api/evaluations/",
    "/evaluations/hostile/",
    "/api/evaluations/hostile/",
    "/prompt-sets/tool_prompts/",
    "/api/prompt-sets/tool_prompts/",
)


def _good(root: Path) -> None:
    _result(root, "good")  # beside the hostile one: it must still be listed, intact


@pytest.mark.parametrize(
    ("where", "raw"),
    [
        ("pass_rate", HUGE),
        ("pass_rate", "-" + HUGE),
        ("total", HUGE),
        ("passed", HUGE),
        ("request_errors", HUGE),
        ("by_tag.search.pass_rate", HUGE),
        ("by_tag.search.total", HUGE),
        ("top_failure_reasons.0.1", HUGE),
        ("records.0.latency_s", HUGE),
    ],
)
def test_a_401_digit_integer_in_an_evaluation_result_is_missing(client, use_workspace, where, raw):
    path = _result(use_workspace)
    _good(use_workspace)

    def edit(data):
        node = data if where.startswith("records") else data["summary"]
        *parents, last = where.split(".")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[int(last) if isinstance(node, list) else last] = "PLACEHOLDER"

    _edit_json(path, edit)
    _raw_replace(path, '"PLACEHOLDER"', raw)
    _answers(client, EVAL_PAGES)
    listed = json.loads(client.get("/api/evaluations/").content)["evaluations"]
    assert {e["name"] for e in listed} == {"hostile", "good"}
    hostile = json.loads(client.get("/api/evaluations/hostile/").content)
    assert hostile["model"] == "nexus-sft:q8" and len(hostile["cases"]) == 2
    assert HUGE[:50] not in client.get("/api/evaluations/hostile/").content.decode()


MALFORMED = {
    "by_tag as a list": lambda d: d["summary"].__setitem__("by_tag", [["search", 1]]),
    "by_tag stats as a list": lambda d: d["summary"]["by_tag"].__setitem__("search", [1, 2]),
    "by_tag stats as text": lambda d: d["summary"]["by_tag"].__setitem__("search", "1/2"),
    "top_failure_reasons an integer": lambda d: d["summary"].__setitem__("top_failure_reasons", 7),
    "top_failure_reasons of strings": lambda d: d["summary"].__setitem__(
        "top_failure_reasons", ["why", 3]
    ),
    "validator.issues an integer": lambda d: d["records"][1]["validator"].__setitem__("issues", 3),
    "validator.issues of strings": lambda d: d["records"][1]["validator"].__setitem__(
        "issues", ["bad", None]
    ),
    "validator as a repr string": lambda d: d["records"][1].__setitem__(
        "validator", "{'issues': 5, 'passed': False}"
    ),
    "validator an integer": lambda d: d["records"][1].__setitem__("validator", 5),
    "records an object": lambda d: d.__setitem__("records", {"a": 1}),
    "a record a list": lambda d: d["records"].__setitem__(0, [1, 2]),
    "case_id an integer": lambda d: d["records"][0].__setitem__("case_id", 12),
    "tags an integer": lambda d: d["records"][0].__setitem__("tags", 12),
    "generated_at in year 1": lambda d: d["metadata"].__setitem__(
        "generated_at", "0001-01-01T00:00:00"
    ),
    "generated_at in year 1 east of UTC": lambda d: d["metadata"].__setitem__(
        "generated_at", "0001-01-01T00:00:00+05:00"
    ),
    "generated_at in year 9999 west of UTC": lambda d: d["metadata"].__setitem__(
        "generated_at", "9999-12-31T23:59:59-05:00"
    ),
    "generated_at a number": lambda d: d["metadata"].__setitem__("generated_at", 17e300),
    "metadata a list": lambda d: d.__setitem__("metadata", [1]),
    "model an object": lambda d: d["metadata"].__setitem__("model", {"name": "x"}),
    "prompt_file a list": lambda d: d["metadata"].__setitem__("prompt_file", ["a"]),
    "pass_rate a string": lambda d: d["summary"].__setitem__("pass_rate", "50%"),
    "pass_rate NaN": lambda d: d["summary"].__setitem__("pass_rate", float("nan")),
    "pass_rate above one": lambda d: d["summary"].__setitem__("pass_rate", 1e300),
    "passed a bool": lambda d: d["summary"].__setitem__("passed", True),
}


@pytest.mark.parametrize("change", sorted(MALFORMED))
def test_a_malformed_evaluation_result_renders_with_the_rest(client, use_workspace, change):
    path = _result(use_workspace)
    _good(use_workspace)
    _edit_json(path, MALFORMED[change])
    _answers(client, EVAL_PAGES)
    listed = json.loads(client.get("/api/evaluations/").content)["evaluations"]
    assert {e["name"] for e in listed} == {"hostile", "good"}
    good = next(e for e in listed if e["name"] == "good")
    assert good["pass_rate"] == 0.5 and good["error"] is None
    assert "good" in client.get("/evaluations/").content.decode()


def test_a_pass_rate_outside_zero_to_one_is_not_a_rate(client, use_workspace):
    path = _result(use_workspace)
    _edit_json(path, lambda d: d["summary"].__setitem__("pass_rate", 250.0))
    data = json.loads(client.get("/api/evaluations/hostile/").content)
    assert data["pass_rate"] is None
    html = client.get("/evaluations/hostile/").content.decode()
    assert "25000%" not in html


@pytest.mark.parametrize("body", ["[1, 2]", '"text"', "null", "{}", '{"summary": 3}', "{"])
def test_a_result_that_is_not_a_result_is_listed_with_its_error(client, use_workspace, body):
    (use_workspace / "Evaluator" / "results").mkdir(parents=True)
    (use_workspace / "Evaluator" / "results" / "hostile.json").write_text(body)
    _good(use_workspace)
    _answers(client, EVAL_PAGES)
    listed = json.loads(client.get("/api/evaluations/").content)["evaluations"]
    hostile = next(e for e in listed if e["name"] == "hostile")
    assert hostile["error"]
    assert "hostile" in client.get("/evaluations/").content.decode()
    assert hostile["error"] in client.get("/evaluations/hostile/").content.decode()


def test_an_empty_result_file_is_a_reserved_name_not_a_result(client, use_workspace):
    # An evaluation job reserves its result's name with an empty file (created exclusively,
    # so nothing can plant a link there) until the Evaluator writes it; a job that ends
    # without a result removes it. Until then it is no result, and no page fails on it.
    (use_workspace / "Evaluator" / "results").mkdir(parents=True)
    (use_workspace / "Evaluator" / "results" / "reserved.json").write_text("")
    _good(use_workspace)
    for url in ("/evaluations/", "/", "/models/", "/evaluations/good/"):
        assert client.get(url).status_code == 200, url
    listed = json.loads(client.get("/api/evaluations/").content)["evaluations"]
    assert [e["name"] for e in listed] == ["good"]
    assert client.get("/evaluations/reserved/").status_code == 404


# JSON nested deep ------------------------------------------------------------------------


def _nested(levels: int) -> str:
    return "[" * levels + "1" + "]" * levels


@pytest.mark.parametrize("levels", [255, 256, 600, 1023])
@pytest.mark.parametrize("where", ["lineage", "adapter", "trainer_state", "evaluation"])
def test_json_nested_hundreds_of_levels_is_not_a_500(client, use_workspace, levels, where):
    run = _run(use_workspace)
    deep = _nested(levels)
    if where == "lineage":
        _raw_replace(run / "training_lineage.json", '"timestamp": ', f'"deep": {deep}, "t": ')
    elif where == "adapter":
        for ckpt in ("checkpoint-25", "checkpoint-100"):
            _raw_replace(
                run / "checkpoints" / ckpt / "adapter_config.json",
                '"target_modules": ',
                f'"target_modules": {deep}, "was": ',
            )
        (run / "training_lineage.json").unlink()  # so the run's header reads the adapter
    elif where == "trainer_state":
        _raw_replace(
            run / "checkpoints" / "checkpoint-100" / "trainer_state.json",
            '"log_history": ',
            f'"deep": {deep}, "log_history": ',
        )
    else:
        path = _result(use_workspace)
        _raw_replace(path, '"by_tag": ', f'"deep": {deep}, "by_tag": ')
    urls = (*PAGES, f"{RUN_URL}checkpoint-25/", f"/api{RUN_URL}checkpoint-25/")
    if where == "evaluation":
        urls = EVAL_PAGES
    _answers(client, urls)
