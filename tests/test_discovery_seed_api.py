"""The seed document's public API and its listed tests, with `tuner.discovery` as `discovery`."""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery import CheckpointDiscovery, CheckpointInfo, TrainingRunDiscovery
from sampledata import evaluator
from sampledata import runs as wb

from .conftest import run_dir, started


@pytest.fixture
def test_repo_root(workspace: Path) -> Path:
    for day in range(1, 8):
        wb.make_run(workspace, "sft", started(f"2025110{day}_100000"), max_steps=100, save_every=25)
    wb.make_run(workspace, "kto", started("20251108_100000"), max_steps=100, save_every=25)
    return workspace


@pytest.fixture
def test_run_dir(test_repo_root: Path) -> Path:
    return TrainingRunDiscovery(repo_root=test_repo_root).discover("sft", limit=1)[0]


def test_discover_sft_runs(test_repo_root):
    discovery = TrainingRunDiscovery(repo_root=test_repo_root)
    runs = discovery.discover("sft", limit=5)
    assert len(runs) == 5
    assert all(r.is_dir() for r in runs)
    assert [r.name for r in runs] == sorted((r.name for r in runs), reverse=True)
    assert all("sft_output" in str(r) for r in runs)


def test_discover_with_no_output_dir():
    discovery = TrainingRunDiscovery(repo_root=Path("/nonexistent"))
    assert discovery.discover("sft") == []


def test_discover_filters_runs_without_models(workspace):
    good = wb.make_run(workspace, "sft", started("20251101_100000"))
    logs_only = run_dir(workspace, "sft", "20251102_100000")
    wb.write_log(logs_only, [{"step": 5, "loss": 1.0}], "20251102_100100")
    (logs_only / "checkpoints").mkdir()
    assert TrainingRunDiscovery(repo_root=workspace).discover("sft") == [good]


def test_discover_narrows_by_platform_and_names_a_mac_trainer_once(workspace):
    rtx = wb.make_run(workspace, "sft", started("20251101_100000"))
    a100 = wb.make_run(workspace, "sft", started("20251102_100000"), platform="a100")
    mac = wb.make_mlx_trainer(workspace, [(started("20251103_100000"), 30, True)] * 2)
    discovery = TrainingRunDiscovery(repo_root=workspace)
    assert discovery.discover("sft") == [a100, rtx]
    assert discovery.discover("sft", platform="rtx") == [rtx]
    assert discovery.discover("sft", platform="A100") == [a100]
    assert discovery.discover("mlx", platform="mac") == [mac]
    assert discovery.discover("sft", platform="mac") == []


def test_load_metrics(test_run_dir):
    metrics = CheckpointDiscovery.load_metrics(test_run_dir)
    assert isinstance(metrics, dict)
    assert metrics and all(isinstance(k, int) for k in metrics)
    # The end-of-training summary must not erase the last training line's loss.
    last = metrics[max(metrics)]
    assert "loss" in last and "train_runtime" in last


def test_discover_checkpoints(test_run_dir):
    checkpoints = CheckpointDiscovery.discover(test_run_dir)
    assert len(checkpoints) > 0
    assert any(cp.is_final for cp in checkpoints)
    assert checkpoints[0].is_final
    assert [cp.step for cp in checkpoints[1:]] == [25, 50, 75, 100]
    assert CheckpointDiscovery().discover(test_run_dir) == checkpoints


def test_checkpoint_score_kto():
    cp = CheckpointInfo(
        path=Path("/fake"), step=100, metrics={"kl": 0.1, "rewards/margins": 0.3}, is_final=False
    )
    assert cp.score("kto") == pytest.approx(3.0)


def test_checkpoint_score_without_inputs_cannot_win_a_max():
    assert CheckpointInfo(Path("/f"), 1, {"kl": 0.0, "rewards/margins": 1.0}).score("kto") == float(
        "-inf"
    )
    assert CheckpointInfo(Path("/f"), 1, {}).score("sft") == float("-inf")
    assert CheckpointInfo(Path("/f"), 1, {"loss": 0.25}).score("sft") == -0.25


def test_full_upload_workflow(test_repo_root):
    runs = TrainingRunDiscovery(repo_root=test_repo_root).discover("sft", limit=1)
    assert len(runs) > 0
    checkpoints = CheckpointDiscovery().discover(runs[0])
    assert len(checkpoints) > 0
    best = max(checkpoints, key=lambda cp: cp.score("sft"))
    assert best is not None and best.score("sft") > float("-inf")


def test_the_discovery_package_imports_no_django():
    import subprocess
    import sys

    code = (
        "import pkgutil, sys, discovery\n"
        "for m in pkgutil.iter_modules(discovery.__path__):\n"
        "    __import__('discovery.' + m.name)\n"
        "assert not [n for n in sys.modules if n.split('.')[0] == 'django'], 'django imported'\n"
    )
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)


def test_the_seeds_five_names_are_the_packages_face():
    import discovery

    for name in (
        "TrainingRunDiscovery",
        "CheckpointDiscovery",
        "ModelDiscovery",
        "PromptSetDiscovery",
        "CheckpointInfo",
    ):
        assert name in discovery.__all__ and hasattr(discovery, name)


def test_full_eval_workflow(test_repo_root):
    from discovery import ModelDiscovery, PromptSetDiscovery

    models = ModelDiscovery.discover("nonexistent")
    assert models == []
    evaluator.write_prompt_sets(test_repo_root)
    prompt_sets = PromptSetDiscovery(repo_root=test_repo_root).discover()
    assert len(prompt_sets) > 0
