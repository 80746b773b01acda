"""The Mac MLX trainer: runs are segments of one appended log; files belong to the newest."""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from discovery.mlx import parse_segments
from discovery.runs import Workspace, detail, get_run, list_runs, list_trainers
from sampledata import runs as wb

from .conftest import SHARED_UPSTREAM, age, needs_upstream

REAL_LOG = (
    SHARED_UPSTREAM / "Trainers" / "mistral_lora_mac" / "test_logs_minimal" / "training.jsonl"
)
FIRST, SECOND = datetime(2025, 11, 1, 9, 0, 0), datetime(2025, 11, 3, 9, 0, 0)


@pytest.fixture
def mac(workspace: Path) -> Path:
    wb.make_mlx_trainer(workspace, [(FIRST, 40, False), (SECOND, 100, True)])
    age(workspace / "Trainers", 7200)
    return workspace


@needs_upstream
def test_the_real_upstream_log_splits_into_its_runs(workspace):
    segments = parse_segments(REAL_LOG.read_bytes())
    assert [s.name for s in segments] == ["20251114_084629", "20251114_084939", "20251114_085132"]
    assert sorted(segments[0].entries) == [0, 1] and segments[0].entries[1]["loss"] == 16.25
    assert segments[2].entries == {1: pytest.approx(segments[2].entries[1])}
    assert all(s.base_model == "mistralai/Mistral-7B-Instruct-v0.3" for s in segments)
    assert segments[0].max_steps == 20
    folder = workspace / "Trainers" / "mistral_lora_mac" / "logs"
    folder.mkdir(parents=True)
    shutil.copy(REAL_LOG, folder / "training.jsonl")
    # The middle run stopped before its first step: listed, as a crash at start is news.
    runs = list_runs(Workspace.at(workspace))
    assert [r.name for r in runs] == ["20251114_085132", "20251114_084939", "20251114_084629"]
    middle = detail(runs[1])
    assert (middle.run.status, middle.step, middle.max_steps) == ("stopped", None, 20)


@needs_upstream
@pytest.mark.django_db
def test_a_run_that_stopped_before_its_first_step_says_so(client, use_workspace):
    folder = use_workspace / "Trainers" / "mistral_lora_mac" / "logs"
    folder.mkdir(parents=True)
    shutil.copy(REAL_LOG, folder / "training.jsonl")
    page = client.get("/runs/mistral_lora_mac/20251114_084939/").content.decode()
    assert "It stopped before logging its first step" in page
    # The trainer makes final_model/ at start: only the adapters file in it means finished.
    assert "there is no final_model/lora_adapters.npz" in page
    assert "No checkpoint or final model is left" not in page and "Nothing was logged." in page


@needs_upstream
def test_a_copied_log_is_not_a_run_training_now(workspace):
    # The real log, copied today: the file is new, its records are from November 2025.
    folder = workspace / "Trainers" / "mistral_lora_mac" / "logs"
    folder.mkdir(parents=True)
    shutil.copy(REAL_LOG, folder / "training.jsonl")
    newest = list_runs(Workspace.at(workspace))[0]
    assert newest.name == "20251114_085132" and newest.status == "stopped"
    assert newest.last_write is not None
    assert datetime.fromtimestamp(newest.last_write).date() <= date(2025, 11, 15)


def test_an_mlx_folder_is_a_trainer_of_type_mlx(mac):
    trainers = list_trainers(Workspace.at(mac))
    assert [(t.id, t.type, t.layout) for t in trainers] == [("mistral_lora_mac", "mlx", "mlx")]


def test_each_segment_is_a_run_and_only_the_newest_owns_the_files(mac):
    runs = {r.name: r for r in list_runs(Workspace.at(mac))}
    first, second = runs["20251101_090100"], runs["20251103_090100"]
    assert first.status == "stopped" and first.checkpoint_steps == () and not first.has_final_model
    assert second.status == "completed" and second.has_final_model
    assert second.checkpoint_steps == (60, 80, 100)


def test_a_stopped_mlx_run_last_wrote_at_its_own_last_record(mac):
    first = next(r for r in list_runs(Workspace.at(mac)) if r.name == "20251101_090100")
    # 40 steps at 30 s a record after its 4 opening records, and no "Training complete":
    # not the banner the next run wrote two days later.
    records = wb.mlx_records(FIRST, 40, finished=False)
    assert first.last_write == datetime.fromisoformat(records[-1]["timestamp"]).timestamp()


def test_the_best_mlx_checkpoint_is_the_trainers_own_best_checkpoint_npz(mac):
    d = detail(get_run(Workspace.at(mac), "mistral_lora_mac", "20251103_090100"))
    # best_checkpoint.npz copies the save with the lowest validation loss (step 40), whose
    # checkpoint_step_40.npz was rotated away: it is a row of its own, read from its state.
    assert (d.ranking.rule, d.best.name, d.best.step) == ("trainer", "best_checkpoint", 40)
    assert "best_checkpoint.npz" in d.ranking.notes[0]
    assert d.best.path.name == "best_checkpoint.npz"
    with_val = [c for c in d.checkpoints if "val_loss" in c.metrics and c.metric_steps == {}]
    assert d.best.metrics["val_loss"] < min(c.metrics["val_loss"] for c in with_val if c != d.best)
    assert d.history.last_step == 100 and d.max_steps == 100
    assert d.base_model == "mistralai/Mistral-7B-Instruct-v0.3"
    by_name = {c.name: c for c in d.checkpoints}
    assert by_name["checkpoint-60"].path.name == "checkpoint_step_60.npz"
    assert by_name["final_model"].path.parts[-3:] == ("outputs", "final_model", "lora_adapters.npz")


def test_a_new_run_appended_to_the_log_is_running_and_owns_no_old_files(mac):
    log = mac / "Trainers" / "mistral_lora_mac" / "logs" / "training.jsonl"
    start = datetime.now().replace(microsecond=0) - timedelta(minutes=5)
    with log.open("a") as f:
        for r in wb.mlx_records(start, 10, finished=False):
            f.write(json.dumps(r) + "\n")
    newest = list_runs(Workspace.at(mac))[0]
    assert newest.name == (start + timedelta(seconds=60)).strftime("%Y%m%d_%H%M%S")
    assert newest.status == "running"
    assert not newest.has_final_model and newest.checkpoint_steps == ()
    previous = list_runs(Workspace.at(mac))[1]  # still owns the files it wrote
    assert previous.has_final_model and previous.checkpoint_steps == (60, 80, 100)


@pytest.mark.django_db
def test_mlx_runs_have_pages_and_json_like_any_other(client, mac, settings):
    settings.TUNER_WORKSPACE = mac
    data = json.loads(client.get("/api/runs/?type=mlx").content)
    assert [r["run"] for r in data["runs"]] == ["20251103_090100", "20251101_090100"]
    url = data["runs"][0]["url"]
    assert url == "/runs/mistral_lora_mac/20251103_090100/"
    page = client.get(url).content.decode()
    assert 'best<span class="badge-rule"> · trainer' in page and "<svg" in page
    metrics = json.loads(client.get(f"/api{url}metrics/").content)
    assert metrics["steps"][-1] == 100 and len(metrics["series"]["loss"]) == 100
    ckpt = json.loads(client.get(f"/api{url}checkpoint-60/").content)
    npz = mac / "Trainers" / "mistral_lora_mac" / "checkpoints" / "checkpoint_step_60.npz"
    assert ckpt["files"] == [{"name": "checkpoint_step_60.npz", "size": npz.stat().st_size}]
    assert ckpt["adapter"] is None
    assert client.get(f"{url}checkpoint-60/").status_code == 200
    assert client.get("/runs/mistral_lora_mac/20251102_000000/").status_code == 404


@pytest.mark.django_db
def test_the_training_report_fills_the_header_of_the_run_that_wrote_it(client, mac, settings):
    settings.TUNER_WORKSPACE = mac
    report = mac / "Trainers" / "mistral_lora_mac" / "outputs" / "metrics" / "training_report.json"
    data = json.loads(report.read_text())
    data["training_results"]["best_val_loss"] = float("inf")  # the trainer's initial value
    report.write_text(json.dumps(data))
    age(report, 7200)
    newest = detail(get_run(Workspace.at(mac), "mistral_lora_mac", "20251103_090100"))
    assert newest.lineage["lora"] == {"rank": 16, "alpha": 32}
    assert newest.lineage["training"]["gradient_accumulation_steps"] == 4
    assert newest.lineage["resources"]["peak_metal_gb"] == 11.8
    older = detail(get_run(Workspace.at(mac), "mistral_lora_mac", "20251101_090100"))
    assert older.lineage is None  # the next run overwrote it
    page = client.get("/runs/mistral_lora_mac/20251103_090100/").content.decode()
    assert "LoRA r</dt><dd>16<" in page and "LoRA alpha</dt><dd>32<" in page
    assert "Batch size</dt><dd>2<" in page and "Accumulation</dt><dd>4<" in page
    assert "Final perplexity" in page and "11.8 GB Metal" in page and "∞" in page
    served = json.loads(client.get("/api/runs/mistral_lora_mac/20251103_090100/").content)
    assert served["lineage"]["results"]["best_val_loss"] is None
    assert served["lineage"]["source"] == "outputs/metrics/training_report.json"


@pytest.fixture
def machine_zone(monkeypatch):
    """Sets the time zone the dashboard's machine keeps, for this test only."""

    def use(name: str) -> None:
        monkeypatch.setenv("TZ", name)
        time.tzset()

    yield use
    monkeypatch.undo()
    time.tzset()


def test_files_go_to_the_right_run_when_the_log_was_written_in_another_zone(
    workspace, machine_zone
):
    machine_zone("UTC")  # a server the Mac's folder was copied to
    tokyo = timezone(timedelta(hours=9))
    first, second = datetime(2025, 11, 1, 10, 0), datetime(2025, 11, 1, 13, 0)  # Tokyo, naive
    folder = wb.make_mlx_trainer(workspace, [(first, 40, False), (second, 100, True)])
    last = json.loads((folder / "logs" / "training.jsonl").read_bytes().splitlines()[-1])

    def tokyo_time(naive: datetime) -> float:
        return naive.replace(tzinfo=tokyo).timestamp()

    # As copied with its times kept: the log last changed when its newest record was written.
    written = tokyo_time(datetime.fromisoformat(last["timestamp"]))
    os.utime(folder / "logs" / "training.jsonl", (written, written))
    for path in [
        *(folder / "checkpoints").iterdir(),
        folder / "outputs" / "final_model" / "lora_adapters.npz",
    ]:
        t = tokyo_time(datetime(2025, 11, 1, 13, 40))
        os.utime(path, (t, t))
    runs = {r.name: r for r in list_runs(Workspace.at(workspace))}
    # Read as UTC, the second run's files (04:40 UTC) would predate both runs' starts.
    assert runs["20251101_130100"].checkpoint_steps == (60, 80, 100)
    assert runs["20251101_130100"].has_final_model
    assert runs["20251101_100100"].checkpoint_steps == ()


@pytest.mark.skipif(
    not Path("/usr/share/zoneinfo/Europe/Berlin").exists(), reason="no time zone database"
)
def test_runs_on_either_side_of_a_summer_time_change_keep_their_files(workspace, machine_zone):
    machine_zone("Europe/Berlin")  # where the Mac trained, a zone with summer time
    june, july, november = (datetime(2025, m, d, 10, 0) for m, d in ((6, 1), (7, 1), (11, 3)))
    folder = wb.make_mlx_trainer(
        workspace, [(june, 20, False), (july, 40, False), (november, 100, True)]
    )
    log = folder / "logs" / "training.jsonl"
    last = datetime.fromisoformat(json.loads(log.read_bytes().splitlines()[-1])["timestamp"])
    os.utime(log, (last.timestamp(), last.timestamp()))  # naive → this machine's zone
    july_file = folder / "checkpoints" / "checkpoint_step_20.npz"
    july_file.write_bytes(b"\0" * 16)
    t = datetime(2025, 7, 1, 10, 30).timestamp()  # half an hour into July's run, in summer time
    os.utime(july_file, (t, t))
    finals = [folder / "outputs" / "final_model" / "lora_adapters.npz"]
    for path in [
        *(folder / "checkpoints").glob("*_step_[!2]*"),
        folder / "checkpoints" / "best_checkpoint.npz",
        *finals,
    ]:
        t = datetime(2025, 11, 3, 10, 40).timestamp()
        os.utime(path, (t, t))
    runs = {r.name: r for r in list_runs(Workspace.at(workspace))}
    assert runs["20250701_100100"].checkpoint_steps == (20,)
    assert runs["20251103_100100"].checkpoint_steps == (60, 80, 100)


@pytest.mark.django_db
def test_the_charts_mark_the_best_checkpoint_npz_which_has_no_number(client, settings, mac):
    settings.TUNER_WORKSPACE = mac
    html = client.get("/runs/mistral_lora_mac/20251103_090100/").content.decode()
    # Step 40's numbered save was rotated away; only best_checkpoint.npz holds it.
    assert '<line class="mark best"' in html and "checkpoint-40 (best)" in html


def test_a_corrupt_compressed_best_checkpoint_is_no_crash(mac):
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("state.npy", b"\x93NUMPY" + bytes(range(256)) * 64)
    data = bytearray(buf.getvalue())
    start = 30 + len("state.npy")  # the local header, then the deflated bytes
    data[start : start + 40] = b"\xff" * 40  # invalid code lengths: zlib.error on reading
    best = mac / "Trainers" / "mistral_lora_mac" / "checkpoints" / "best_checkpoint.npz"
    best.write_bytes(bytes(data))
    runs = list_runs(Workspace.at(mac))
    assert [r.name for r in runs] == ["20251103_090100", "20251101_090100"]
    d = detail(runs[0])
    assert d.best.name == "best_checkpoint" and d.best.step is None  # its step is unknown
