"""Trainers and runs: layout, order, status, base model, progress, confinement."""

from __future__ import annotations

import os
import time
from pathlib import Path

from discovery.runs import Workspace, detail, get_run, list_runs, list_trainers
from sampledata import runs as wb

from .conftest import age, run_dir, started


def test_it_finds_every_platform_and_type_of_trainer(workspace):
    for folder in ("rtx3090_sft", "rtx3090_kto", "a100_dpo", "h100_grpo"):
        platform, run_type = folder.split("_")
        (workspace / "Trainers" / folder / f"{run_type}_output_{platform}").mkdir(parents=True)
    (workspace / "Trainers" / "mistral_lora_mac" / "checkpoints").mkdir(parents=True)
    (workspace / "Trainers" / "rtx3090_sft" / "notes").mkdir()
    trainers = {t.id: t.type for t in list_trainers(Workspace.at(workspace))}
    assert trainers == {
        "a100_dpo": "dpo",
        "h100_grpo": "grpo",
        "rtx3090_kto": "kto",
        "rtx3090_sft": "sft",
    }


def test_it_lists_folders_with_a_model_a_valid_checkpoint_or_a_log(workspace):
    wb.make_run(workspace, "sft", started("20251101_100000"), completed=True)
    partial = wb.make_run(workspace, "sft", started("20251102_100000"), completed=False)
    empty = run_dir(workspace, "sft", "20251103_100000")
    (empty / "checkpoints" / "checkpoint-final").mkdir(parents=True)  # not checkpoint-<int>
    (empty / "checkpoints" / "checkpoint-10.bak").mkdir()
    (run_dir(workspace, "sft", "20251104_100000") / "notes").mkdir()  # nothing a trainer writes
    just_started = run_dir(workspace, "sft", "20251105_100000")
    wb.write_log(just_started, [{"step": 5, "loss": 1.0}], "20251105_100100")
    names = [r.name for r in list_runs(Workspace.at(workspace))]
    assert names == ["20251105_100000", "20251102_100000", "20251101_100000"]
    assert partial.name in names


def test_it_orders_runs_newest_first_by_the_stamp_in_the_name_else_mtime(workspace):
    a = wb.make_run(workspace, "sft", started("20251101_100000"))
    b = wb.make_run(workspace, "kto", started("20251105_100000"))
    custom = wb.output_dir(workspace, "sft") / "my-experiment"
    wb.add_final_model(custom)
    t = time.mktime((2025, 11, 3, 0, 0, 0, 0, 0, -1))
    os.utime(custom, (t, t))
    os.utime(a, (time.time(), time.time()))  # mtime must not beat the name
    assert [r.name for r in list_runs(Workspace.at(workspace))] == [b.name, "my-experiment", a.name]


def test_it_tells_completed_running_and_stopped_runs_apart(workspace):
    done = wb.make_run(workspace, "sft", started("20251101_100000"), completed=True)
    lineage_only = wb.make_run(workspace, "sft", started("20251101_110000"), completed=False)
    wb.write_json(lineage_only / "training_lineage.json", {"training_type": "SFT"})
    # Unfinished: their newest checkpoint is short of max_steps.
    running = wb.make_run(workspace, "sft", started("20251102_100000"), done=200, completed=False)
    stopped = wb.make_run(workspace, "sft", started("20251103_100000"), done=200, completed=False)
    for path in (done, lineage_only, stopped):
        age(path, 3600)
    age(running, 3600)
    wb.write_log(running, [{"step": 999, "loss": 0.1}], "20251102_100200")  # a fresh write
    status = {r.name: r.status for r in list_runs(Workspace.at(workspace))}
    assert status == {
        done.name: "completed",
        lineage_only.name: "completed",
        running.name: "running",
        stopped.name: "stopped",
    }


def test_the_running_window_is_configurable(workspace):
    run = wb.make_run(workspace, "sft", started("20251102_100000"), done=200, completed=False)
    age(run, 120)
    assert list_runs(Workspace.at(workspace, 600))[0].status == "running"
    assert list_runs(Workspace.at(workspace, 60))[0].status == "stopped"


def test_it_reports_base_model_from_lineage_else_adapter_config(workspace):
    with_lineage = wb.make_run(workspace, "sft", started("20251101_100000"), base_model="a/b")
    wb.write_json(with_lineage / "training_lineage.json", {"model": {"base_model": "from/lineage"}})
    no_lineage = wb.make_run(
        workspace, "sft", started("20251102_100000"), completed=False, base_model="from/adapter"
    )
    runs = {r.name: detail(r) for r in list_runs(Workspace.at(workspace))}
    assert runs[with_lineage.name].base_model == "from/lineage"
    assert runs[no_lineage.name].base_model == "from/adapter"


def test_it_reports_progress_from_trainer_state(workspace):
    run = wb.make_run(
        workspace, "sft", started("20251101_100000"), max_steps=400, done=230, completed=False
    )
    d = detail(get_run(Workspace.at(workspace), "rtx3090_sft", run.name))
    assert d.max_steps == 400
    assert d.history.last_step == 230


def test_it_does_not_follow_run_or_checkpoint_links_out_of_the_workspace(workspace, tmp_path):
    outside = tmp_path / "elsewhere"
    wb.make_run(outside, "sft", started("20251101_100000"))
    src = wb.output_dir(outside, "sft") / "20251101_100000"
    out = wb.output_dir(workspace, "sft")
    out.mkdir(parents=True)
    (out / "20251101_100000").symlink_to(src)
    inside = wb.make_run(workspace, "sft", started("20251102_100000"), completed=False)
    (inside / "checkpoints" / "checkpoint-9999").symlink_to(src / "checkpoints" / "checkpoint-300")
    runs = list_runs(Workspace.at(workspace))
    assert [r.name for r in runs] == [inside.name]
    assert 9999 not in runs[0].checkpoint_steps
    assert get_run(Workspace.at(workspace), "rtx3090_sft", "20251101_100000") is None


def test_get_run_refuses_names_that_are_not_plain_folder_names(workspace):
    wb.make_run(workspace, "sft", started("20251101_100000"))
    for bad in ("..", ".", "../sft_output_rtx3090", "a/b", "x\x00", ""):
        assert get_run(Workspace.at(workspace), "rtx3090_sft", bad) is None
        assert get_run(Workspace.at(workspace), bad, "20251101_100000") is None


def test_a_missing_workspace_has_no_runs(tmp_path: Path):
    assert list_runs(Workspace.at(tmp_path / "nope")) == []


def test_progress_falls_back_to_the_trainers_global_step_without_a_log(workspace):
    run = run_dir(workspace, "sft", "20251101_100000")
    wb.add_checkpoint(run, 120, max_steps=400)
    d = detail(get_run(Workspace.at(workspace), "rtx3090_sft", run.name))
    assert d.history.last_step is None
    assert (d.step, d.max_steps) == (120, 400)


def test_a_reused_walk_still_sees_new_runs_and_training_progress(workspace):
    ws = Workspace.at(workspace, walk_reuse=60)
    live = wb.make_run(workspace, "sft", started("20251101_100000"), done=100, completed=False)
    done = wb.make_run(workspace, "sft", started("20251102_100000"))
    age(done, 3600)
    first = {r.name: r for r in list_runs(ws)}
    assert first[live.name].status == "running"
    wb.write_log(live, [{"step": 105, "loss": 0.1}], "20251101_100200")  # training goes on
    wb.add_final_model(done)  # a finished run's folder, edited: reused until the walk is old
    again = {r.name: r for r in list_runs(ws)}
    assert again[live.name].signature != first[live.name].signature  # read again
    assert again[done.name] is first[done.name]  # reused
    wb.make_run(workspace, "sft", started("20251103_100000"))  # a new run: the folder changed
    assert len(list_runs(ws)) == 3
    assert len(list_runs(Workspace.at(workspace))) == 3  # no reuse asked: always a full walk


def test_a_detail_looks_only_for_the_top_files_its_walk_listed(workspace, monkeypatch):
    run = wb.make_run(workspace, "sft", started("20251101_100000"), completed=True)
    found = list_runs(Workspace.at(workspace))[0]
    looked: list[str] = []
    for name in ("lstat", "stat", "open"):
        real = getattr(os, name)

        def spy(path, *args, _real=real, **kwargs):
            looked.append(os.fspath(path))
            return _real(path, *args, **kwargs)

        monkeypatch.setattr(os, name, spy)
    detail(found)
    top = {Path(p).name for p in looked if Path(p).parent == run}
    # The walk listed no trainer_state.json, LLaMA-Factory log or config, or metrics file here.
    assert top.isdisjoint(
        {
            "trainer_state.json",
            "trainer_log.jsonl",
            "training_args.yaml",
            "all_results.json",
            "train_results.json",
        }
    ), top
    assert found.may_have("training_lineage.json")


def test_a_top_file_written_after_the_walk_is_read_by_the_next_walk(workspace):
    run = wb.make_run(workspace, "sft", started("20251101_100000"), done=200, completed=False)
    ws = Workspace.at(workspace)
    assert detail(list_runs(ws)[0]).global_step == 200
    wb.write_json(
        run / "trainer_state.json",
        {"global_step": 1000, "max_steps": 1000, "log_history": [{"step": 1000, "loss": 0.5}]},
    )
    again = list_runs(ws)[0]
    assert again.may_have("trainer_state.json")
    assert again.status == "completed"
    assert detail(again).global_step == 1000
