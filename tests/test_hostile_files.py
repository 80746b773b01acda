"""Hostile workspaces: links out, FIFOs and devices, endless lines, files edited in place.

Every file a run's pages read is opened the one way (`discovery.paths.open_in`): resolved
against the workspace with every folder on the way, regular files only, without blocking.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sampledata import runs as wb

from .conftest import KTO_RUN as KTO
from .conftest import REPO, age

pytestmark = pytest.mark.django_db
ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


@pytest.fixture
def ws(three_runs: Path) -> Path:
    return three_runs


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


def kto(ws: Path) -> Path:
    return wb.output_dir(ws, "kto") / KTO


def get_json(client, url: str) -> dict:
    response = client.get(url)
    assert response.status_code == 200, response.content[:300]
    return json.loads(response.content)


def test_a_lineage_linked_out_of_the_workspace_is_not_read(client, ws, outside):
    secret = outside / "training_lineage.json"
    secret.write_text(json.dumps({"model": {"base_model": "secret/model"}, "api_key": "sk-123"}))
    lineage = kto(ws) / "training_lineage.json"
    lineage.unlink()
    lineage.symlink_to(secret)
    data = get_json(client, f"/api/runs/rtx3090_kto/{KTO}/")
    assert data["lineage"] is None and "sk-123" not in json.dumps(data)
    assert data["header"]["base_model"] != "secret/model"


def test_an_adapter_and_a_state_linked_out_are_not_read(client, ws, outside):
    ckpt = kto(ws) / "checkpoints" / "checkpoint-50"
    (outside / "adapter_config.json").write_text(json.dumps({"secret": "adapter"}))
    (outside / "trainer_state.json").write_text(
        json.dumps({"best_model_checkpoint": "checkpoint-50", "log_history": []})
    )
    for name in ("adapter_config.json", "trainer_state.json"):
        (ckpt / name).unlink()
        (ckpt / name).symlink_to(outside / name)
    data = get_json(client, f"/api/runs/rtx3090_kto/{KTO}/checkpoint-50/")
    assert data["adapter"] is None
    run = get_json(client, f"/api/runs/rtx3090_kto/{KTO}/")
    assert run["rank"]["rule"] != "trainer" or run["best_checkpoint"]["name"] != "checkpoint-50"


@pytest.mark.parametrize("folder", ["logs", "checkpoints"])
def test_a_run_folder_linked_out_is_not_listed_or_charted(client, ws, outside, folder):
    moved = outside / folder
    (kto(ws) / folder).rename(moved)
    (kto(ws) / folder).symlink_to(moved)
    if folder == "logs":
        (log,) = list(moved.glob("training_2*.jsonl"))
        with log.open("a") as f:
            f.write(json.dumps({"step": 1000, "loss": 12345.0}) + "\n")
    data = get_json(client, f"/api/runs/rtx3090_kto/{KTO}/")
    if folder == "logs":
        series = get_json(client, f"/api/runs/rtx3090_kto/{KTO}/metrics/")
        assert 1000 not in series["steps"] and 12345.0 not in series["series"]["loss"]
        assert data["last_step"] != 1000
    else:
        assert [c["name"] for c in data["checkpoints"]] == ["final_model"]
        response = client.get(f"/api/runs/rtx3090_kto/{KTO}/checkpoint-50/")
        assert response.status_code == 404


def test_a_trainers_folder_linked_out_lists_nothing(client, use_workspace, outside):
    wb.make_run(outside, "sft", wb.datetime(2025, 11, 1, 10, 0))
    (use_workspace / "Trainers").rmdir()
    (use_workspace / "Trainers").symlink_to(outside / "Trainers")
    assert get_json(client, "/api/runs/")["count"] == 0


def test_an_mlx_checkpoints_folder_linked_out_lists_no_files(use_workspace, outside):
    from discovery.runs import Workspace, list_runs

    folder = wb.make_mlx_trainer(
        use_workspace, [(wb.datetime(2025, 11, 1, 9, 0), 100, True)], name="mac"
    )
    (folder / "checkpoints").rename(outside / "checkpoints")
    (folder / "checkpoints").symlink_to(outside / "checkpoints")
    (run,) = list_runs(Workspace.at(use_workspace))
    assert run.checkpoint_steps == ()


def _answers_within(client, url: str, seconds: float = 5.0) -> int:
    """The status of GET `url`, failing if it does not come back in time (a hang)."""
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(client.get(url).status_code), daemon=True)
    t.start()
    t.join(seconds)
    assert result, f"{url} did not answer within {seconds} s"
    return result[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
@pytest.mark.parametrize(
    "relative",
    [
        "training_lineage.json",
        "checkpoints/checkpoint-50/adapter_config.json",
        "checkpoints/checkpoint-100/trainer_state.json",
        "logs/training_20991231_000000.jsonl",
    ],
)
def test_a_fifo_where_a_file_belongs_never_blocks_a_page(client, ws, relative):
    path = kto(ws) / relative
    if path.exists():
        path.unlink()
    os.mkfifo(path)
    for url in (f"/runs/rtx3090_kto/{KTO}/", f"/api/runs/rtx3090_kto/{KTO}/", "/runs/", "/"):
        assert _answers_within(client, url) == 200
    assert _answers_within(client, f"/runs/rtx3090_kto/{KTO}/checkpoint-50/") == 200


@pytest.mark.skipif(not ROOT, reason="making a device node needs root")
def test_a_device_that_reads_zeros_is_not_read(client, ws):
    path = kto(ws) / "checkpoints" / "checkpoint-50" / "adapter_config.json"
    path.unlink()
    os.mknod(path, 0o644 | 0o020000, os.makedev(1, 5))  # a character device like /dev/zero
    assert _answers_within(client, f"/runs/rtx3090_kto/{KTO}/checkpoint-50/") == 200
    data = get_json(client, f"/api/runs/rtx3090_kto/{KTO}/checkpoint-50/")
    assert data["adapter"] is None


ENDLESS_LINE = """
import resource, sys
sys.path.insert(0, {repo!r})
from pathlib import Path
from discovery.logindex import read_summary
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
h = read_summary(Path({run!r}), Path({root!r}), [10])
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(h.last_step, h.skipped, grown // 1024)
"""


def test_a_two_gigabyte_line_is_read_in_bounded_memory(workspace):
    run = wb.output_dir(workspace, "sft") / "20251101_100000"
    log = wb.write_log(run, [{"step": 10, "loss": 0.5}], "20251101_100100")
    with log.open("ab") as f:
        f.truncate(log.stat().st_size + 2 * 2**30)  # sparse: 2 GB of zeros, no newline
    code = ENDLESS_LINE.format(repo=str(REPO), run=str(run), root=str(workspace))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    last_step, skipped, grown_mb = (int(x) for x in out.stdout.split())
    assert last_step == 10 and skipped == 1  # the endless tail counts as one unreadable line
    assert grown_mb < 100, f"reading grew the process by {grown_mb} MB"


def test_an_edited_lineage_shows_at_once(client, ws):
    url = f"/api/runs/rtx3090_kto/{KTO}/"
    lineage = kto(ws) / "training_lineage.json"
    data = json.loads(lineage.read_text())
    lineage.write_text('{"model": {"base_mod')  # caught mid-write
    assert get_json(client, url)["lineage"] is None
    data["model"]["base_model"] = "edited/in-place"
    lineage.write_text(json.dumps(data))
    age(lineage, 0)
    assert get_json(client, url)["header"]["base_model"] == "edited/in-place"


def test_an_edited_best_model_checkpoint_shows_at_once(client, ws):
    url = f"/api/runs/rtx3090_kto/{KTO}/"
    state = kto(ws) / "checkpoints" / "checkpoint-100" / "trainer_state.json"
    before = get_json(client, url)
    data = json.loads(state.read_text())
    data["best_model_checkpoint"] = "/box/checkpoints/checkpoint-25"
    state.write_text(json.dumps(data))
    after = get_json(client, url)
    assert before["rank"]["rule"] != "trainer"
    assert (after["rank"]["rule"], after["best_checkpoint"]["name"]) == ("trainer", "checkpoint-25")


def test_an_mlx_start_in_year_one_is_no_crash(client, use_workspace):
    folder = wb.make_mlx_trainer(
        use_workspace, [(wb.datetime(2025, 11, 1, 9, 0), 20, True)], name="mac"
    )
    with (folder / "logs" / "training.jsonl").open("a") as f:
        record = {"timestamp": "0001-01-01T00:00:00", "level": "INFO"}
        f.write(json.dumps({**record, "message": "MLX Fine-Tuning System - Logging Initialized"}))
        f.write(
            "\n" + json.dumps({**record, "level": "METRICS", "step": 1, "metrics": {"loss": 1}})
        )
        f.write("\n")
    for url in ("/", "/runs/", "/api/runs/"):
        assert client.get(url).status_code == 200


def _bytes_read() -> int:
    """Bytes this process has read through any read call (Linux's per-process counter)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux's /proc/self/io")
@pytest.mark.parametrize("shape", ["zeros after its lines", "unrecognised lines after zeros"])
def test_a_first_answer_reads_kilobytes_of_a_sparse_log_of_gigabytes(
    client, use_workspace, monkeypatch, shape
):
    from discovery.logindex import indexer

    run = wb.output_dir(use_workspace, "sft") / "20251101_100000"
    log = wb.write_log(run, [{"step": 10, "loss": 0.5}], "20251101_100100")
    size = 4 * 2**30  # sparse: no disk is used for the zeros
    if shape == "zeros after its lines":
        with log.open("ab") as f:
            f.truncate(size)
    else:
        with log.open("ab") as f:
            f.truncate(size)
            f.write(b"".join(b'{"loss": 0.5, "step": %d}\n' % s for s in range(11, 30)))
    queued: list[str] = []
    indexer.configure(None, background=True)  # as a server answers
    monkeypatch.setattr(
        indexer._verifier, "queue", lambda key, root, targets=(): queued.append(key)
    )
    before = _bytes_read()
    data = get_json(client, "/api/runs/")
    read = _bytes_read() - before
    assert [r["run"] for r in data["runs"]] == ["20251101_100000"]  # from the walk
    assert read < 16 * 2**20, f"the first answer read {read / 2**20:.0f} MB of a 4 GB log"
    assert str(log) in queued  # read in full behind the answer, by the background pass
