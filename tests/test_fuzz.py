"""Property tests: no bytes break the log readers, no valid line is lost, no name escapes."""

from __future__ import annotations

import io
import json
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discovery.logindex import LogIndexer, read_history, read_summary, scan
from discovery.logs import parse_line
from discovery.paths import is_inside, is_safe_name
from discovery.prompt_sets import get_prompt_set
from discovery.runs import Workspace, get_run
from sampledata import evaluator
from sampledata import runs as wb

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**6), 10**6),
)
entry = st.dictionaries(st.sampled_from(["loss", "kl", "rewards/margins", "eval_loss"]), values)


@FUZZ
@given(st.binary(max_size=4000))
def test_arbitrary_bytes_never_raise(data: bytes):
    parse_line(data)
    found, offset, pending = scan(io.BytesIO(data), 0, len(data))
    assert offset <= len(data)
    assert all(type(k) is int for k in found.entries)


@FUZZ
@given(
    st.lists(st.tuples(st.integers(0, 50), entry), min_size=1, max_size=40),
    st.lists(st.binary(max_size=30).filter(lambda b: b"\n" not in b), max_size=5),
    st.randoms(),
)
def test_valid_lines_are_never_lost_among_garbage(lines, garbage, rnd):
    text = [json.dumps({"step": s, **e}) for s, e in lines]
    junk = [g for g in garbage if parse_line(g) is None]
    mixed: list[bytes] = [t.encode() for t in text]
    for g in junk:
        mixed.insert(rnd.randint(0, len(mixed)), g)
    data = b"\n".join(mixed) + b"\n"

    expected: dict[int, dict[str, float]] = {}
    for s, e in lines:
        expected[s] = {**expected.get(s, {}), **{k: float(v) for k, v in e.items()}}

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp).resolve()
        run = wb.output_dir(root, "sft") / "20250101_000000"
        (run / "logs").mkdir(parents=True)
        (run / "logs" / "training_20250101_000100.jsonl").write_bytes(data)
        full = read_history(run, root)
        summary = read_summary(run, root, list(expected))
    assert set(full.merged) == set(expected)
    for s, e in expected.items():
        at = summary.at(s)
        for k, v in e.items():
            for got in (full.merged[s][k], at.values[k]):
                assert (math.isnan(v) and math.isnan(got)) or got == v
            assert at.steps[k] == s
    assert summary.skipped == full.skipped == len([g for g in junk if g.strip()])


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 30), entry), min_size=1, max_size=30), st.integers(1, 29))
def test_reading_in_two_parts_equals_reading_at_once(lines, cut_line):
    data = b"".join(json.dumps({"step": s, **e}).encode() + b"\n" for s, e in lines)
    cut = sum(len(x) for x in data.splitlines(keepends=True)[:cut_line])
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "training_20250101_000100.jsonl"
        log.write_bytes(data[:cut])
        root = Path(tmp).resolve()
        grown = LogIndexer()
        grown.index(log, root)
        with log.open("ab") as f:
            f.write(data[cut:])
        a = grown.index(log, root)
        b = LogIndexer().index(log, root)
    assert a is not None and b is not None
    assert sorted((k, list(s)) for k, s in a.shapes) == sorted((k, list(s)) for k, s in b.shapes)
    assert a.skipped_lines == b.skipped_lines


names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=60
) | st.sampled_from(["..", ".", "/", "../..", "%2e%2e", "\x00", "a/../../b", "~", "/etc/passwd"])


@FUZZ
@given(names, names)
def test_no_name_resolves_outside_the_workspace(trainer, run):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp).resolve() / "ws"
        wb.make_run(root, "sft", wb.datetime(2025, 1, 1), max_steps=10, save_every=5, log_every=5)
        found = get_run(Workspace.at(root), trainer, run)
        if found is not None:
            assert is_inside(found.path, root)
            assert is_safe_name(trainer) and is_safe_name(run)
        assert get_prompt_set(root, run) is None or is_inside(get_prompt_set(root, run).path, root)


# A run's pages read its checkpoints' sweep results: the database.
@pytest.mark.django_db
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(names, names)
def test_no_url_is_a_500(client, use_workspace, trainer, run):
    from urllib.parse import quote

    if not (use_workspace / "Trainers" / "rtx3090_sft").exists():
        wb.make_run(use_workspace, "sft", wb.datetime(2025, 1, 1), max_steps=10, save_every=5)
    for prefix in ("/runs/", "/api/runs/"):
        for url in (
            f"{prefix}{quote(trainer, safe='')}/{quote(run, safe='')}/",
            f"{prefix}rtx3090_sft/20250101_000000/{quote(run, safe='')}/",
            f"{prefix}?sort={quote(run, safe='')}&page={quote(trainer, safe='')}",
        ):
            assert client.get(url).status_code in (200, 400, 404), url
    for prefix in ("/models/", "/api/models/", "/evaluations/", "/api/evaluations/"):
        url = f"{prefix}{quote(run, safe='')}/"
        assert client.get(url).status_code in (200, 400, 404), url


PARAMS = ["type", "status", "q", "sort", "page", "trainer", "rank", "order", "run", "metric"]
PARAMS += ["tag", "model", "prompt_set", "x", "backend", "tags", "limit", "temperature", "seed"]


@pytest.fixture
def served(settings):
    """An Ollama that answers, so the evaluation form is rendered with its models."""
    from .fake_servers import FakeServer

    server = FakeServer("ollama").start()
    settings.OLLAMA_HOST = server.host
    settings.TUNER_BACKEND_CACHE_SECONDS = 60  # one answer serves every example
    yield server
    server.stop()


PARAMS += ["tag", "model", "prompt_set", "x", "e", "e", "e"]


@pytest.mark.django_db
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.tuples(st.sampled_from(PARAMS), names), max_size=6))
def test_no_query_string_is_a_500(client, use_workspace, served, params):
    from urllib.parse import urlencode

    if not (use_workspace / "Trainers" / "rtx3090_sft").exists():
        wb.make_run(use_workspace, "sft", wb.datetime(2025, 1, 1), max_steps=10, save_every=5)
        evaluator.write_prompt_sets(use_workspace)
        # Enough of an Evaluator for the form to be offered.
        (use_workspace / "Evaluator" / "cli.py").write_text("")
        (use_workspace / "tools").mkdir()
        (use_workspace / "tools" / "validate_syngen.py").write_text("")
    query = urlencode(params)
    for path in (
        "/",
        "/runs/",
        "/api/runs/",
        "/runs/rtx3090_sft/20250101_000000/",
        "/api/runs/rtx3090_sft/20250101_000000/",
        "/compare/",
        "/api/compare/",
        "/prompt-sets/tool_prompts/",
        "/api/prompt-sets/tool_prompts/",
        "/evaluations/",
        "/api/evaluations/",
        "/evaluations/new/",
        "/api/evaluations/new/",
        "/evaluations/jobs/",
        "/api/evaluations/jobs/",
        "/evaluations/compare/",
        "/api/evaluations/compare/",
        "/models/",
        "/api/models/",
        "/api/runs/rtx3090_sft/20250101_000000/lineage/",
    ):
        for headers in ({}, {"HX-Request": "true"}):
            response = client.get(f"{path}?{query}", headers=headers)
            assert response.status_code in (200, 400, 404), f"{path}?{query}"
