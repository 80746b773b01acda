"""Checkpoints: names, metrics at (or before) their step, final model, files, adapter."""

from __future__ import annotations

import os

from discovery.checkpoints import checkpoint_steps, list_files, read_adapter_config
from discovery.runs import list_checkpoints
from sampledata import runs as wb

from .conftest import age, run_dir, started


def test_it_takes_metrics_from_the_nearest_earlier_logged_step(workspace):
    run = run_dir(workspace, "sft", "20251101_100000")
    wb.write_log(run, [{"step": s, "loss": 1.0 / s} for s in range(5, 101, 5)], "20251101_100100")
    for step in (50, 52, 3):
        wb.add_checkpoint(run, step)
    by_name = {c.name: c for c in list_checkpoints(run, workspace)}
    assert by_name["checkpoint-50"].metrics_step == 50
    assert by_name["checkpoint-52"].metrics_step == 50
    assert by_name["checkpoint-52"].metrics["loss"] == 1.0 / 50
    assert by_name["checkpoint-3"].metrics_step is None
    assert by_name["checkpoint-3"].metrics == {}


def test_the_final_model_comes_first_with_the_last_logged_steps_metrics(workspace):
    run = run_dir(workspace, "sft", "20251101_100000")
    wb.write_log(
        run,
        [{"step": 95, "loss": 0.2}, {"step": 100, "loss": 0.1}, {"step": 100, "train_loss": 0.5}],
        "20251101_100100",
    )
    wb.add_checkpoint(run, 100)
    wb.add_checkpoint(run, 50)
    wb.add_final_model(run)
    names = [c.name for c in list_checkpoints(run, workspace)]
    assert names == ["final_model", "checkpoint-50", "checkpoint-100"]
    final = list_checkpoints(run, workspace)[0]
    assert final.is_final and final.step == 100 and final.metrics_step == 100
    assert final.metrics == {"loss": 0.1, "train_loss": 0.5}


def test_it_lists_files_with_sizes_and_reads_the_adapter_config(workspace):
    run = run_dir(workspace, "sft", "20251101_100000")
    ckpt = wb.add_checkpoint(run, 10, base_model="base/model")
    (ckpt / "sub").mkdir()
    (ckpt / "sub" / "x.bin").write_bytes(b"12345")
    files = {f.name: f.size for f in list_files(ckpt, workspace)}
    assert files["adapter_model.safetensors"] == 4096
    assert files["sub/"] == 5
    assert "trainer_state.json" in files
    adapter = read_adapter_config(ckpt, workspace)
    assert adapter["base_model_name_or_path"] == "base/model"
    assert adapter["r"] == 32 and adapter["lora_alpha"] == 64


def test_files_that_link_out_of_the_workspace_are_not_listed(workspace, tmp_path):
    secret = tmp_path / "id_rsa"
    secret.write_text("secret")
    run = run_dir(workspace, "sft", "20251101_100000")
    ckpt = wb.add_checkpoint(run, 10)
    (ckpt / "leak").symlink_to(secret)
    assert "leak" not in {f.name for f in list_files(ckpt, workspace)}


def test_an_unreadable_adapter_config_is_none(workspace):
    run = run_dir(workspace, "sft", "20251101_100000")
    ckpt = wb.add_checkpoint(run, 10)
    (ckpt / "adapter_config.json").write_text("{not json")
    assert read_adapter_config(ckpt, workspace) is None
    (ckpt / "adapter_config.json").write_text("[1, 2]")
    assert read_adapter_config(ckpt, workspace) is None


def _set_mtime_ns(path, ns: int) -> None:
    os.utime(path, ns=(ns, ns))


def test_a_checkpoint_added_to_a_settled_folder_is_listed(workspace):
    run = wb.make_run(workspace, "sft", started("20251101_100000"), max_steps=100, save_every=50)
    age(run, 3600)
    assert checkpoint_steps(run / "checkpoints", workspace) == [50, 100]
    wb.add_checkpoint(run, 150, max_steps=200)
    assert checkpoint_steps(run / "checkpoints", workspace) == [50, 100, 150]


def test_a_settled_folder_is_not_listed_again_while_its_mtime_stays(workspace):
    run = wb.make_run(workspace, "sft", started("20251101_100000"), max_steps=100, save_every=50)
    age(run, 3600)
    folder = run / "checkpoints"
    before = os.stat(folder).st_mtime_ns
    assert checkpoint_steps(run / "checkpoints", workspace) == [50, 100]
    (folder / "checkpoint-150").mkdir()
    _set_mtime_ns(folder, before)  # as if in the same clock tick: the listing is reused
    assert checkpoint_steps(run / "checkpoints", workspace) == [50, 100]


def test_a_folder_changed_just_now_is_listed_again_even_with_the_same_mtime(workspace):
    run = wb.make_run(workspace, "sft", started("20251101_100000"), max_steps=100, save_every=50)
    folder = run / "checkpoints"
    before = os.stat(folder).st_mtime_ns
    assert checkpoint_steps(run / "checkpoints", workspace) == [50, 100]
    (folder / "checkpoint-150").mkdir()
    _set_mtime_ns(folder, before)
    assert checkpoint_steps(run / "checkpoints", workspace) == [50, 100, 150]


def test_a_linked_checkpoint_is_checked_every_time(workspace, tmp_path):
    run = wb.make_run(workspace, "sft", started("20251101_100000"), max_steps=100, save_every=50)
    inside = workspace / "elsewhere" / "checkpoint-150"
    inside.mkdir(parents=True)
    (run / "checkpoints" / "checkpoint-150").symlink_to(inside)
    age(run, 3600)
    assert checkpoint_steps(run / "checkpoints", workspace) == [50, 100, 150]
    inside.rmdir()
    (tmp_path / "outside").mkdir()
    inside.parent.rmdir()
    (workspace / "elsewhere").symlink_to(tmp_path / "outside")  # now the link leads out
    (tmp_path / "outside" / "checkpoint-150").mkdir()
    assert checkpoint_steps(run / "checkpoints", workspace) == [50, 100]


def test_a_root_given_through_a_link_confines_as_the_real_folder_does(workspace, tmp_path):
    run = run_dir(workspace, "sft", "20251101_100000")
    wb.write_log(run, [{"step": s, "loss": 1.0 / s} for s in range(5, 51, 5)], "20251101_100100")
    wb.add_checkpoint(run, 50)
    link = tmp_path / "ws-link"
    link.symlink_to(workspace)
    (ckpt,) = list_checkpoints(link / run.relative_to(workspace), link)
    assert ckpt.metrics["loss"] == 1.0 / 50  # the log opened: the link is the workspace
