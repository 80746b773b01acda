"""Sweep results as a sweep leaves them, for tests of what a run's page makes of them: the
Evaluator's own result files, each linked to its checkpoint by a succeeded job of a sweep."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from pathlib import Path

from sampledata import runs as wb

from .conftest import upstream_file

TRAINER = "rtx3090_sft"
RUN = "20251101_100000"
URL = f"/runs/{TRAINER}/{RUN}/"
API = f"/api/runs/{TRAINER}/{RUN}/"


def result_file(root: Path, stem: str, prompt_set: str, passed: int, total: int) -> None:
    """An Evaluator result with `passed` of `total` records passing, shaped as the real one in
    the upstream Evaluator's results (its metadata, summary and first records, trimmed)."""
    real = json.loads(upstream_file("Evaluator", "results", "full_coverage.json").read_text())
    records = []
    for i in range(total):
        record = copy.deepcopy(real["records"][i])
        record["passed"] = i < passed
        record["validator"]["passed"] = i < passed
        records.append(record)
    real["records"] = records
    real["metadata"] |= {"prompt_total": total, "prompt_selected": total}
    real["metadata"]["prompt_file"] = f"Evaluator/prompts/{prompt_set}.json"
    real["summary"] = {
        "total": total,
        "passed": passed,
        "failed": total - passed,
        "request_errors": 0,
        "pass_rate": passed / total,
        "by_tag": {},
        "top_failure_reasons": [],
    }
    results = root / "Evaluator" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{stem}.json").write_text(json.dumps(real, indent=2))


def evaluated(root: Path, prompt_set: str, passes: dict[str, tuple[int, int]], second: int = 0):
    """One finished sweep on `prompt_set`: per checkpoint (passed, total), each a result file
    and a succeeded job of the sweep, as tuner_site/jobs/sweep.py leaves them."""
    from tuner_site.models import EvaluationJob, Sweep

    sweep = Sweep.objects.create(
        trainer=TRAINER,
        run=RUN,
        backend="ollama",
        backend_kind="ollama",
        backend_url="http://127.0.0.1:9",
        base="nexus-tools-sft:q8",
        prompt_set=prompt_set,
    )
    for i, (checkpoint, (passed, total)) in enumerate(passes.items()):
        stem = f"run_20251201_1200{second + i:02d}"
        result_file(root, stem, prompt_set, passed, total)
        EvaluationJob.objects.create(
            backend="ollama",
            backend_kind="ollama",
            backend_url="http://127.0.0.1:9",
            model=f"tuner-{RUN}-ckpt{checkpoint}",
            prompt_set=prompt_set,
            status=EvaluationJob.Status.SUCCEEDED,
            total=total,
            done=total,
            passed=passed,
            result=stem,
            output_stem=stem,
            sweep=sweep,
            checkpoint=checkpoint,
        )


def make_run(use_workspace: Path) -> Path:
    """A finished SFT run saved and evaluated every 100 steps: checkpoint-300 has the lowest
    eval_loss."""
    (use_workspace / "Evaluator" / "prompts" / "levels.json").write_text("[]")
    wb.make_run(
        use_workspace,
        "sft",
        datetime(2025, 11, 1, 10),
        max_steps=500,
        save_every=100,
        eval_every=100,
        base_model=wb.BASE_MODELS[2],
        seed=1,
    )
    return use_workspace
