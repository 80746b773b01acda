"""The demo workspace agrees with itself: what one file says, the others say too."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from discovery.evaluations import list_evaluations
from discovery.runs import Workspace, detail, list_runs, read_lineage
from sampledata.demo import SWEEP, follow_demo


def _runtime(d) -> float | None:
    return d.history.at(d.step).values.get("train_runtime")


def _hf_details(root: Path) -> list:
    return [detail(r) for r in list_runs(Workspace.at(root)) if r.trainer.layout == "hf"]


def test_each_failed_case_gives_a_reason_the_summary_counts(demo_workspace):
    found = list_evaluations(demo_workspace)
    assert len(found) == 5
    for e in found:
        failed = [c for c in e.cases if not c.passed]
        assert failed and all(len(c.issues) == 1 for c in failed)
        assert dict(e.failure_reasons) == Counter(c.issues[0] for c in failed)
    sft = next(e for e in found if "sft" in (e.model or ""))
    assert sft.failure_reasons[0] == ("Expected tools not called: createFolder", 3)


def test_training_time_is_the_logs_train_runtime_and_the_adapter_matches_the_lineage(
    demo_workspace,
):
    completed = [d for d in _hf_details(demo_workspace) if d.run.status == "completed"]
    assert len(completed) == 6 + len(SWEEP)  # the demo's hyperparameter sweep too
    for d in completed:
        assert d.header.training_seconds == _runtime(d) is not None
        lineage = read_lineage(d.run.path, demo_workspace)
        if lineage is None:  # Hugging Face's own layout writes none
            assert d.run.trainer.id == "grpo"
            continue
        lora = lineage["lora"]
        adapter = json.loads((d.run.final[0] / "adapter_config.json").read_text())
        assert adapter["target_modules"] == lora["target_modules"]
        assert (adapter["r"], adapter["lora_alpha"]) == (lora["rank"], lora["alpha"])


def test_the_live_run_ends_agreeing_with_itself(demo_workspace):
    follow_demo(demo_workspace, interval=0)
    d = next(d for d in _hf_details(demo_workspace) if d.run.name == max_name(demo_workspace))
    assert d.run.status == "completed"
    assert d.header.training_seconds == _runtime(d) is not None


def max_name(root: Path) -> str:
    return max(r.name for r in list_runs(Workspace.at(root)) if r.type == "kto")
