"""A running run's elapsed time, rate and ETA (discovery/pace.py), on the log shapes trainers
write: upstream's JSONL (`interval_time`, eval lines between), a Hugging Face trainer_state
log_history (no times at all) and the MLX trainer's real log (`step_time`)."""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from discovery import logindex
from discovery.pace import UNKNOWN, pace, run_pace
from discovery.runs import Workspace, detail, get_run, list_runs, run_history
from sampledata import runs as wb

from .conftest import SHARED_UPSTREAM, needs_upstream
from .test_real_outputs import GEMMA_TAIL, hf_checkpoint, run_dirs  # noqa: F401

pytestmark = pytest.mark.django_db


def _upstream_run(
    workspace: Path, started: datetime, lines: list[dict], max_steps: int = 100
) -> Path:
    """A KTO run of 100 steps training now, checkpoints at 25 and 50, with this log."""
    run_dir = wb.make_run(
        workspace, "kto", started, max_steps=max_steps, done=50, save_every=25, completed=False
    )
    for log in (run_dir / "logs").glob("training_*.jsonl"):
        log.unlink()
    wb.write_log(run_dir, lines, started.strftime("%Y%m%d_%H%M%S"))
    return run_dir


def _line(step: int, interval: float, **values: float) -> dict:
    return {"step": step, "timestamp": "", "interval_time": interval, "loss": 0.4, **values}


def test_the_upstream_log_gives_the_rate_of_its_last_lines_and_an_eval_is_not_training(
    workspace,
):
    started = datetime.now().replace(microsecond=0) - timedelta(minutes=10)
    # Five steps a line: 20 s a line (15 steps a minute) at first, then 10 s (30 a minute);
    # at step 25 the evaluation's line (14 s of evaluating) merges into the training line.
    lines = [_line(s, 20.0) for s in range(5, 30, 5)]
    lines.append(_line(25, 14.0, eval_loss=0.5, eval_runtime=13.9))
    lines += [_line(s, 10.0) for s in range(30, 85, 5)]
    _upstream_run(workspace, started, lines)
    (run,) = list_runs(Workspace.at(workspace))
    assert run.status == "running"
    now = run.last_write
    assert now is not None
    p = pace(run, run_history(run), 100, now)
    # The last ten spans (ten lines' five steps in 10 s): today's pace, not the average.
    assert p.steps_per_minute == pytest.approx(30.0)
    assert p.eta_seconds == pytest.approx(40.0)  # 20 steps left at 30 a minute
    assert p.elapsed_seconds == pytest.approx(now - started.timestamp())
    # A minute after the last line, a minute of the remaining time has gone.
    assert pace(run, run_history(run), 100, now + 30).eta_seconds == pytest.approx(10.0)
    assert pace(run, run_history(run), 100, now + 300).eta_seconds == 0.0


def test_a_running_runs_log_is_read_for_its_pace_once_per_change(workspace, monkeypatch):
    """A run list's JSON asks every running run's pace on each poll: its log's last lines are
    read again only when one of its files changed, and the clock still moves the rest."""
    import discovery.pace as pace_module

    started = datetime.now().replace(microsecond=0) - timedelta(minutes=10)
    run_dir = _upstream_run(workspace, started, [_line(s, 10.0) for s in range(5, 55, 5)])
    reads = []
    read = pace_module.last_entries
    monkeypatch.setattr(
        pace_module, "last_entries", lambda *args: reads.append(args[0]) or read(*args)
    )
    (run,) = list_runs(Workspace.at(workspace))
    d = detail(run)
    now = run.last_write
    assert now is not None
    first = run_pace(d, now)
    assert first.steps_per_minute == pytest.approx(30.0)
    assert run_pace(d, now + 30).eta_seconds == pytest.approx(first.eta_seconds - 30)
    assert len(reads) == 1
    # Ten steps more at twice the pace: the log changed, so it is read again.
    with next((run_dir / "logs").glob("training_*.jsonl")).open("a") as f:
        f.writelines(json.dumps(_line(s, 5.0)) + "\n" for s in range(55, 105, 5))
    (run,) = list_runs(Workspace.at(workspace))
    assert run_pace(detail(run), now).steps_per_minute == pytest.approx(60.0)
    assert len(reads) == 2


def test_a_long_logs_pace_is_read_from_its_last_lines_as_its_whole_history_gives_it(
    workspace, monkeypatch
):
    """A server's first answer reads every log from windows: the pace must not read a long
    log whole (30,000 lines here), and what its last lines say is what the whole log says."""
    import discovery.pace as pace_module

    started = datetime.now().replace(microsecond=0) - timedelta(hours=5)
    lines = [_line(s, 20.0) for s in range(1, 20_001)]  # 3 a minute, long ago
    lines += [_line(s, 6.0) for s in range(20_001, 30_001)]  # 10 a minute now
    run_dir = _upstream_run(workspace, started, lines, max_steps=40_000)
    log = next((run_dir / "logs").glob("training_*.jsonl"))
    with log.open("a") as f:
        f.write('{"step": 30001, "timestamp": "", "interv')  # being written
    assert log.stat().st_size > 30 * logindex.LAST_LINES_BYTES
    (run,) = list_runs(Workspace.at(workspace))
    now = run.last_write
    assert now is not None
    d = detail(run)
    assert d.max_steps == 40_000
    whole = pace(run, run_history(run), 40_000, now)
    monkeypatch.setattr(pace_module, "run_history", lambda run: pytest.fail("read it whole"))
    p = run_pace(d, now)
    assert p.steps_per_minute == pytest.approx(10.0) == pytest.approx(whole.steps_per_minute)
    # From step 30,000 (not the half-written 30,001): 10,000 steps at 10 a minute.
    assert p.eta_seconds == pytest.approx(whole.eta_seconds) == pytest.approx(60_000.0)


def test_the_json_and_pages_say_it_for_a_running_run_and_null_for_others(client, use_workspace):
    started = datetime.now().replace(microsecond=0) - timedelta(minutes=10)
    _upstream_run(use_workspace, started, [_line(s, 10.0) for s in range(5, 55, 5)])
    wb.make_run(use_workspace, "sft", started - timedelta(days=1), max_steps=50)
    data = client.get("/api/runs/").json()["runs"]
    by_status = {r["status"]: r for r in data}
    running = by_status["running"]
    assert running["steps_per_minute"] == pytest.approx(30.0)
    assert running["eta_seconds"] > 0 and running["elapsed_seconds"] >= 600
    finished = by_status["completed"]
    assert finished["elapsed_seconds"] is finished["steps_per_minute"] is None
    assert finished["eta_seconds"] is None
    one = client.get(running["url"].replace("/runs/", "/api/runs/", 1)).json()
    assert one["steps_per_minute"] == pytest.approx(30.0)
    overview = client.get("/api/").json()
    assert overview["running"][0]["steps_per_minute"] == pytest.approx(30.0)
    page = client.get(running["url"]).content.decode()
    assert "30 steps/min" in page and "left" in page
    assert "30 steps/min" in client.get("/").content.decode()


def test_a_trainer_state_without_times_and_without_a_dated_name_has_no_rate(
    workspace,
    run_dirs,  # noqa: F811
):
    out = run_dirs / "outputs"
    hf_checkpoint(out, 3650, GEMMA_TAIL, max_steps=3765)
    (run,) = list_runs(Workspace.at(workspace, run_dirs=(run_dirs,)))
    # Its start is the folder's modification time, which moves with every save: no start.
    assert pace(run, run_history(run), 3765) == UNKNOWN


def test_a_trainer_state_in_a_dated_run_folder_averages_over_the_time_since_its_start(workspace):
    started = datetime.now().replace(microsecond=0) - timedelta(minutes=30)
    wb.make_run(workspace, "sft", started, max_steps=300, done=150, completed=False, layout="hf")
    (run,) = list_runs(Workspace.at(workspace))
    history = run_history(run)
    assert "interval_time" not in history.metric_names()
    last = max(history.steps)
    now = run.last_write or time.time()
    p = pace(run, history, 300, now)
    assert p.steps_per_minute == pytest.approx(60 * last / (now - started.timestamp()))
    assert p.eta_seconds == pytest.approx(60 * (300 - last) / p.steps_per_minute)


@needs_upstream
def test_the_real_mlx_log_gives_its_rate_from_step_time(workspace):
    real = SHARED_UPSTREAM / "Trainers" / "mistral_lora_mac" / "test_logs_minimal"
    shutil.copytree(real, workspace / "Trainers" / "mistral_lora_mac" / "test_logs_minimal")
    ws = Workspace.at(workspace)
    run = get_run(ws, "mistral_lora_mac", "20251114_085132-test_minimal")
    assert run is not None
    history = run_history(run)
    times = [v for v in history.column("step_time") if v == v]
    assert times, "the real log has METRICS records with step_time"
    p = pace(run, history, 100, run.started_at.timestamp() + 600)
    assert p.steps_per_minute == pytest.approx(60 * len(times) / sum(times))
    assert p.elapsed_seconds == pytest.approx(600)
    assert run_pace(detail(run)) == UNKNOWN  # stopped long ago: nothing is running


def test_the_demos_running_run_started_minutes_ago_at_the_pace_make_run_follows_it(
    demo_workspace,
):
    """Before, its log said 90 minutes of training for a run `make run` ends in six."""
    (run,) = [r for r in list_runs(Workspace.at(demo_workspace)) if r.status == "running"]
    p = run_pace(detail(run))
    assert p.steps_per_minute == pytest.approx(75.0)  # five steps every 4 s
    assert p.elapsed_seconds is not None and p.elapsed_seconds < 5 * 60
    assert p.eta_seconds is not None and 5 * 60 < p.eta_seconds < 6 * 60  # 430 steps to go
