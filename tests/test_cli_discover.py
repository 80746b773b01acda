"""`manage.py discover runs|checkpoints`: readable tables, and the API's JSON with --json."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from sampledata import runs as wb

from .conftest import age, started

SFT = "20251101_100000"
KTO = "20251108_100000"


@pytest.fixture
def ws(use_workspace: Path) -> Path:
    wb.make_run(use_workspace, "sft", started(SFT), max_steps=100, save_every=25, seed=1)
    wb.make_run(use_workspace, "kto", started(KTO), max_steps=100, save_every=25, seed=2)
    age(use_workspace / "Trainers", 7200)
    return use_workspace


def run_json(capfdbinary, *args: str):
    call_command("discover", *args, "--json")
    return json.loads(capfdbinary.readouterr().out)


def test_runs_prints_a_table_newest_first(ws):
    out = StringIO()
    call_command("discover", "runs", stdout=out)
    text = out.getvalue()
    assert text.index(KTO) < text.index(SFT)
    assert "margin/kl" in text and "completed" in text and "2 run(s)" in text


def test_runs_filters_by_type_and_limit(ws):
    out = StringIO()
    call_command("discover", "runs", "--limit", "1", stdout=out)
    assert KTO in out.getvalue() and SFT not in out.getvalue()
    assert "1 of 2 run(s)" in out.getvalue()
    out = StringIO()
    call_command("discover", "runs", "--type", "sft", stdout=out)
    assert SFT in out.getvalue() and KTO not in out.getvalue()


@pytest.mark.django_db
def test_runs_json_is_what_the_api_serves(ws, client, capfdbinary):
    cli = run_json(capfdbinary, "runs")
    api = json.loads(client.get("/api/runs/").content)
    assert cli["count"] == api["count"] == 2
    assert cli["runs"] == api["runs"]


@pytest.mark.django_db
def test_checkpoints_json_is_what_the_api_serves(ws, client, capfdbinary):
    cli = run_json(capfdbinary, "checkpoints", f"rtx3090_kto/{KTO}")
    api = json.loads(client.get(f"/api/runs/rtx3090_kto/{KTO}/").content)
    assert cli == api


@pytest.mark.django_db
def test_checkpoints_are_ranked_by_a_sweeps_pass_rate_as_the_api_ranks_them(
    use_workspace, client, capfdbinary
):
    from .eval_results import API, RUN, TRAINER, evaluated, make_run

    make_run(use_workspace)
    evaluated(use_workspace, "levels", {"checkpoint-200": (4, 4), "checkpoint-300": (2, 4)})
    cli = run_json(capfdbinary, "checkpoints", f"{TRAINER}/{RUN}")
    assert (cli["rank"]["rule"], cli["rank"]["training_best"]) == ("eval:levels", "checkpoint-300")
    assert cli == json.loads(client.get(API).content)
    out = StringIO()
    call_command("discover", "checkpoints", f"{TRAINER}/{RUN}", stdout=out)
    assert "* checkpoint-200" in out.getvalue()


@pytest.mark.django_db
def test_checkpoints_marks_the_best_and_its_rule(ws):
    out = StringIO()
    call_command("discover", "checkpoints", f"rtx3090_sft/{SFT}", stdout=out)
    lines = out.getvalue().splitlines()
    marked = [line for line in lines if line.startswith("* ")]
    assert len(marked) == 1
    assert "best: checkpoint-" in out.getvalue() and "by rule loss" in out.getvalue()


def test_an_unknown_run_is_a_clear_error(ws):
    with pytest.raises(CommandError, match="No run 'rtx3090_sft/nope'"):
        call_command("discover", "checkpoints", "rtx3090_sft/nope")


def test_a_missing_workspace_is_a_clear_error(settings, tmp_path):
    settings.TUNER_WORKSPACE = tmp_path / "missing"
    with pytest.raises(CommandError, match="TUNER_WORKSPACE"):
        call_command("discover", "runs")


def test_runs_counts_the_extra_run_folders_in_its_footer(ws, settings, tmp_path):
    out_dir = tmp_path / "elsewhere" / "outputs"
    (out_dir / "checkpoint-10").mkdir(parents=True)
    state = {"global_step": 10, "log_history": [{"step": 10, "loss": 1.5}]}
    (out_dir / "checkpoint-10" / "trainer_state.json").write_text(json.dumps(state))
    settings.TUNER_RUN_DIRS = [out_dir]
    out = StringIO()
    call_command("discover", "runs", stdout=out)
    assert "outputs" in out.getvalue()
    assert "3 run(s) in " in out.getvalue() and "and 1 run folder(s)" in out.getvalue()


@pytest.mark.django_db
def test_a_run_without_checkpoints_says_so_instead_of_an_empty_table(ws, settings, tmp_path):
    out_dir = tmp_path / "elsewhere" / "outputs"
    out_dir.mkdir(parents=True)
    state = {"global_step": 75, "max_steps": 100, "log_history": [{"step": 75, "loss": 0.19}]}
    (out_dir / "trainer_state.json").write_text(json.dumps(state))
    settings.TUNER_RUN_DIRS = [out_dir]
    out = StringIO()
    call_command("discover", "checkpoints", "outputs/outputs", stdout=out)
    assert "No checkpoint in this run's folder." in out.getvalue()
    assert "checkpoint  step" not in out.getvalue()


@pytest.fixture
def many_lines(use_workspace: Path, tmp_path: Path, monkeypatch) -> dict:
    """Two runs with 2,000-line logs, a command's index store, and every parsed line counted;
    a background read is recorded instead of started."""
    import discovery.logindex as logindex
    import discovery.logs as logs
    from discovery.logindex import indexer
    from tuner_site.management.commands import discover

    for i, name in enumerate((SFT, KTO)):
        wb.make_run(use_workspace, ("sft", "kto")[i], started(name), max_steps=2000, seed=i)
    age(use_workspace / "Trainers", 7200)
    seen: dict = {"parsed": 0, "started": 0}
    real = logindex.parse_line

    def counting(raw: bytes):
        seen["parsed"] += 1
        return real(raw)

    monkeypatch.setattr(logindex, "parse_line", counting)
    monkeypatch.setattr(logs, "parse_line", counting)
    monkeypatch.setattr(discover, "EXACT_READ_BYTES", 0)  # these logs count as many
    monkeypatch.setattr(
        discover, "check_in_background", lambda: seen.__setitem__("started", seen["started"] + 1)
    )
    indexer.configure(tmp_path / "index")
    yield seen
    indexer.configure(None)


def test_a_first_command_answers_from_windows_and_says_so(many_lines, capfdbinary):
    from discovery.logindex import indexer
    from discovery.runs import clear_memo

    call_command("discover", "runs", "--json")
    captured = capfdbinary.readouterr()
    first = json.loads(captured.out)
    assert [r["run"] for r in first["runs"]] == [KTO, SFT]
    assert all(r["last_step"] == 2000 for r in first["runs"])
    assert many_lines["parsed"] < 100  # windows of two 2,000-line logs
    assert many_lines["started"] == 1  # the full read goes on behind it
    # The read that process makes; then a second command reads no log line. Each is a new
    # process: nothing in memory.
    indexer.configure(indexer.store)
    clear_memo()
    call_command("discover", "index", "--background", stdout=StringIO())
    indexer.configure(indexer.store)
    clear_memo()
    many_lines["parsed"] = 0
    out = StringIO()
    call_command("discover", "runs", stdout=out)
    assert "windows" not in out.getvalue() and many_lines["parsed"] == 0
    assert many_lines["started"] == 1
    assert "answered from windows of each" in captured.err.decode()


def test_the_table_says_which_figures_came_from_windows(many_lines):
    out = StringIO()
    call_command("discover", "runs", stdout=out)
    assert "2 run(s)" in out.getvalue()
    assert "2 log(s) never read before were answered from windows" in out.getvalue()


def test_a_background_read_while_another_runs_does_nothing(many_lines):
    import fcntl

    from discovery.logindex import indexer
    from tuner_site.management.commands.discover import CHECK_LOCK

    store = indexer.store
    assert store is not None
    store.mkdir(parents=True, exist_ok=True)
    with open(store / CHECK_LOCK, "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        out = StringIO()
        call_command("discover", "index", "--background", stdout=out)
        assert out.getvalue() == "" and many_lines["parsed"] == 0
    call_command("discover", "index", "--background", stdout=out)
    assert "Indexed 2 run(s)" in out.getvalue() and many_lines["parsed"] > 100


@pytest.mark.django_db
def test_a_second_call_looks_at_no_log_an_earlier_command_kept(
    ws, tmp_path, capfdbinary, monkeypatch
):
    import gc

    from discovery.logindex import indexer
    from discovery.runs import clear_memo

    store = tmp_path / "index"
    indexer.configure(store)
    try:
        first = run_json(capfdbinary, "runs")
        indexer.configure(store)  # a new process: the store read afresh, nothing in memory
        clear_memo()
        asked: list[object] = []
        monkeypatch.setattr(indexer, "unread_bytes", lambda logs: asked.extend(logs) or 0)
        monkeypatch.setattr(indexer, "read_ahead", lambda logs: asked.extend(logs))
        assert run_json(capfdbinary, "runs") == first
        assert asked == []
        assert gc.isenabled()  # paused for the command only
    finally:
        indexer.configure(None)


@pytest.mark.django_db
def test_a_second_call_decodes_no_kept_detail_only_the_summary_beside_it(
    ws, tmp_path, capfdbinary, monkeypatch, client
):
    """Decoding 10,000 kept details (their checkpoints, paths and logs' shapes) was most of a
    second call: a run's row comes from the few values kept beside its detail."""
    from discovery import detailstore
    from discovery.logindex import indexer
    from discovery.runs import clear_memo

    wb.make_run(ws, "sft", started("20251105_100000"), done=40, completed=False, seed=9)
    age(ws / "Trainers", 7200)
    store = tmp_path / "index"
    indexer.configure(store)
    try:
        first = run_json(capfdbinary, "runs")
        assert [r["status"] for r in first["runs"]].count("stopped") == 1
        assert any(r["status_reason"] for r in first["runs"])
        table = StringIO()
        call_command("discover", "runs", stdout=table)
        indexer.configure(store)  # a new process: the store read afresh, nothing in memory
        clear_memo()
        decoded: list[object] = []
        real = detailstore.decode
        monkeypatch.setattr(detailstore, "decode", lambda *a: decoded.append(a) or real(*a))
        assert run_json(capfdbinary, "runs") == first
        again = StringIO()
        call_command("discover", "runs", stdout=again)
        assert again.getvalue() == table.getvalue()
        assert decoded == []
        assert json.loads(client.get("/api/runs/").content)["runs"] == first["runs"]
    finally:
        indexer.configure(None)


def test_discover_runs_the_settings_checks_not_djangos_own(ws, settings, tmp_path):
    from django.core.checks.registry import registry

    ran = []

    def code_check(app_configs=None, **kwargs):
        ran.append(True)
        return []

    registry.register(code_check)
    not_a_folder = tmp_path / "not-a-folder"
    not_a_folder.write_text("")
    settings.TUNER_RUN_DIRS = (not_a_folder,)
    err = StringIO()
    try:
        call_command("discover", "runs", skip_checks=False, stdout=StringIO(), stderr=err)
    finally:
        registry.registered_checks.discard(code_check)
    assert ran == [] and "tuner.W001" in err.getvalue()
