"""JSON shapes of the API, and their encoding; the CLI prints the same ones."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from django.urls import reverse

from discovery.backends import BackendStatus
from discovery.checkpoints import Checkpoint, FileInfo
from discovery.evaluations import Evaluation
from discovery.logs import History
from discovery.modelinfo import ModelInfo
from discovery.prompt_sets import Case
from discovery.runs import Run, RunDetail

if TYPE_CHECKING:
    from tuner_site.prompt_notes import Listed


def dumps(data: Any, indent: bool = False) -> bytes:
    """JSON for the API and the CLI. NaN and Infinity become null, as browsers need: orjson
    does that itself; the fallback, for integers beyond 64 bits, does it here."""
    option = orjson.OPT_NON_STR_KEYS | (orjson.OPT_INDENT_2 if indent else 0)
    try:
        return orjson.dumps(data, option=option)
    except TypeError:
        return json.dumps(_json_safe(data), indent=2 if indent else None).encode()


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def run_url(run: Run) -> str:
    return reverse("tuner-run-detail", args=[run.trainer.id, run.name])


def checkpoint_url(run: Run, name: str) -> str:
    return reverse("tuner-checkpoint-detail", args=[run.trainer.id, run.name, name])


def best_json(d: RunDetail) -> dict[str, Any] | None:
    best = d.best
    if best is None:
        return None
    return {
        "name": best.name,
        "step": best.step,
        "score": d.best_score,
        "rule": d.ranking.rule,
        "url": checkpoint_url(d.run, best.name),
    }


def run_summary(d: RunDetail) -> dict[str, Any]:
    r = d.run
    return {
        "trainer": r.trainer.id,
        "type": r.type,
        "run": r.name,
        "url": run_url(r),
        "status": r.status,
        "started_at": r.started_at.isoformat(),
        "base_model": d.base_model,
        "checkpoint_count": len(r.checkpoint_steps),
        "has_final_model": r.has_final_model,
        "last_step": d.history.last_step,
        "max_steps": d.max_steps,
        "progress": d.progress,
        "best_checkpoint": best_json(d),
        "skipped_log_lines": d.history.skipped,
        # Known for runs that have not finished: how `status` was told.
        "last_write_at": _utc(r.last_write),
    }


def _utc(when: float | None) -> str | None:
    return None if when is None else datetime.fromtimestamp(when, tz=UTC).isoformat()


def checkpoint_row(
    d: RunDetail, c: Checkpoint, score: float | None, size: int | None
) -> dict[str, Any]:
    return {
        "name": c.name,
        "step": c.step,
        "is_final": c.is_final,
        "metrics": c.metrics,
        "metrics_step": c.metrics_step,
        "score": score,
        "best": c.name == d.ranking.best,
        "url": checkpoint_url(d.run, c.name),
        "size": size,
    }


def run_detail(d: RunDetail, sizes: Mapping[str, int]) -> dict[str, Any]:
    ranking = d.ranking
    return {
        **run_summary(d),
        "rank": {"rule": ranking.rule, "metric": ranking.metric, "order": ranking.order},
        "rank_notes": list(ranking.notes),
        "header": header_json(d),
        "lineage": d.lineage,
        "size_on_disk": sum(sizes.values()),
        "checkpoints": [
            checkpoint_row(d, c, s, sizes.get(c.name))
            for c, s in zip(d.checkpoints, ranking.scores, strict=True)
        ],
    }


def checkpoint_detail(
    d: RunDetail, c: Checkpoint, files: list[FileInfo], adapter: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "trainer": d.run.trainer.id,
        "run": d.run.name,
        "name": c.name,
        "step": c.step,
        "is_final": c.is_final,
        "metrics": c.metrics,
        "metrics_step": c.metrics_step,
        "best": c.name == d.ranking.best,
        "path": str(c.path),
        "files": [{"name": f.name, "size": f.size} for f in files],
        "adapter": adapter,
        "url": checkpoint_url(d.run, c.name),
        "run_url": run_url(d.run),
    }


def header_json(d: RunDetail) -> dict[str, Any]:
    h = dataclasses.asdict(d.header)
    h.pop("present")
    return {**h, "lora": {"rank": d.header.lora_rank, "alpha": d.header.lora_alpha}}


def history_json(history: History) -> dict[str, Any]:
    return {
        "steps": history.entry_steps(),
        "series": {name: history.column(name) for name in history.metric_names()},
    }


def model_json(m: ModelInfo) -> dict[str, Any]:
    return {
        "id": m.id,
        "loaded": m.loaded,
        "size": m.size,
        "quantization": m.quantization,
        "family": m.family,
        "parameter_size": m.parameter_size,
        "context_length": m.context_length,
        "size_vram": m.size_vram,
        "modified_at": m.modified_at,
        "expires_at": m.expires_at,
        "format": m.format,
        "type": m.type,
        "parent": m.parent,
    }


def backend_json(s: BackendStatus) -> dict[str, Any]:
    return {
        "name": s.backend.name,
        "kind": s.backend.kind,
        "url": s.backend.url,
        "available": s.available,
        "error": s.error,
        "version": s.version,
        "latency_ms": s.latency_ms,
        "api": s.api,
        "models": [model_json(m) for m in s.models],
        "last_seen": None if s.last_seen is None else last_seen_json(s.last_seen),
    }


def last_seen_json(s: BackendStatus) -> dict[str, Any]:
    return {
        "at": datetime.fromtimestamp(s.checked_at, tz=UTC).isoformat(),
        "version": s.version,
        "models": [model_json(m) for m in s.models],
    }


def prompt_set_json(item: Listed) -> dict[str, Any]:
    s = item.set
    return {
        "name": s.name,
        "description": item.description,
        "count": s.count,
        "error": s.error,
        "url": reverse("tuner-prompt-set-detail", args=[s.name]),
        "file": s.filename,
        "size": s.size,
        "modified_at": datetime.fromtimestamp(s.modified, tz=UTC).isoformat(),
        "top_tags": [{"tag": t, "count": n} for t, n in s.top_tags()],
    }


def case_json(c: Case) -> dict[str, Any]:
    return {
        "id": c.id,
        "question": c.question,
        "tags": list(c.tags),
        "expected_tools": list(c.expected_tools),
    }


def evaluation_json(e: Evaluation, cases: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": e.name,
        "url": reverse("tuner-evaluation-detail", args=[e.name]),
        "model": e.model,
        "prompt_set": e.prompt_set,
        "generated_at": e.generated_at.isoformat() if e.generated_at else None,
        "total": e.total,
        "passed": e.passed,
        "request_errors": e.request_errors,
        "pass_rate": e.pass_rate,
        "error": e.error,
    }
    if cases:
        data["by_tag"] = e.by_tag
        data["failure_reasons"] = [{"reason": r, "count": n} for r, n in e.failure_reasons]
        data["behavior_failures"] = [{"reason": r, "count": n} for r, n in e.behavior_failures]
        data["cases"] = [
            {
                "case_id": c.case_id,
                "passed": c.passed,
                "latency_s": c.latency_s,
                "error": c.error,
                "issues": list(c.issues),
                "tags": list(c.tags),
            }
            for c in e.cases
        ]
    return data


def overview_json(context: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "run_count": context["run_count"],
        "running": [run_summary(d) for d in context["running"]],
        "trainers": [
            {"trainer": trainer, "runs": [run_summary(d) for d in details]}
            for trainer, details in context["newest"]
        ],
        "backends": [backend_json(s) for s in context["statuses"]],
        "prompt_sets": [prompt_set_json(x) for x in context["prompt_sets"]],
        "evaluations": [evaluation_json(e) for e in context["evaluations"]],
    }
