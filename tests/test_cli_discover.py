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
