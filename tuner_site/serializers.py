"""JSON shapes of the API, and their encoding; the CLI prints the same ones."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from django.core.paginator import Page
from django.urls import reverse

from discovery.backends import BackendStatus
from discovery.checkpoints import Checkpoint, FileInfo
from discovery.config import config_of
from discovery.evaluations import Cell, Evaluation, EvaluationComparison
from discovery.lineage import Evaluated, Lineage, Link, Model, Origin, Served
from discovery.logs import History
from discovery.metrics import unit
from discovery.modelinfo import ModelInfo
from discovery.pace import UNKNOWN, run_pace
from discovery.prompt_sets import Case
from discovery.publishing import Publication
from discovery.runs import Run, RunDetail, RunSummary
from discovery.values import as_float
from tuner_site.links import checkpoint_url, model_url, run_url
from tuner_site.paging import CHECKPOINTS_PER_PAGE, MODELS_PER_PAGE, page_count, page_of, share_of

if TYPE_CHECKING:
    from tuner_site.forms import Offer
    from tuner_site.models import EvaluationJob
    from tuner_site.prompt_notes import Listed


def dumps(data: Any, indent: bool = False) -> bytes:
    """JSON for the API and the CLI. NaN and Infinity become null, as browsers need: orjson
    does that itself. Integers beyond 64 bits go through the fallback: within a float's range
    they are written as they are, beyond it they are missing (null), the one number rule."""
    option = orjson.OPT_NON_STR_KEYS | (orjson.OPT_INDENT_2 if indent else 0)
    try:
        return orjson.dumps(data, option=option)
    except TypeError:
        return json.dumps(_json_safe(data), indent=2 if indent else None).encode()


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if type(value) is int:
        return None if as_float(value) is None else value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def best_json(d: RunDetail | RunSummary) -> dict[str, Any] | None:
    s = d.summary if isinstance(d, RunDetail) else d
    if s.best_name is None:
        return None
    return {
        "name": s.best_name,
        "step": s.best_step,
        "score": s.best_score,
        "rule": s.rule,
        "url": checkpoint_url(s.run, s.best_name),
    }


# Every run but a running one has no pace: its JSON, made once.
_NO_PACE = dataclasses.asdict(UNKNOWN)


def run_summary_json(d: RunDetail | RunSummary) -> dict[str, Any]:
    """A run list's row: of a detail, or of the summary a list of every run reads instead."""
    s = d.summary if isinstance(d, RunDetail) else d
    r = s.run
    pace = run_pace(s)
    return {
        "trainer": r.trainer.id,
        "type": r.type,
        "run": r.name,
        "url": run_url(r),
        "status": r.status,
        "started_at": r.started_at.isoformat(),
        "base_model": s.base_model,
        "checkpoint_count": s.checkpoint_count,
        "has_final_model": r.has_final_model,
        "last_step": s.step,
        "max_steps": s.max_steps,
        "progress": s.progress,
        "best_checkpoint": best_json(s),
        "skipped_log_lines": s.skipped,
        # Known for runs that have not finished: how `status` was told.
        "last_write_at": _utc(r.last_write),
        # Why a stopped run did not finish, or that its early stopping ended it (else null).
        "status_reason": s.status_reason,
        # A running run's pace from its log (discovery/pace.py); null when not known.
        **(_NO_PACE if pace is UNKNOWN else dataclasses.asdict(pace)),
    }


def _utc(when: float | None) -> str | None:
    return None if when is None else datetime.fromtimestamp(when, tz=UTC).isoformat()


def checkpoint_row_json(
    d: RunDetail,
    c: Checkpoint,
    score: float | None,
    size: int | None,
    evaluations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "name": c.name,
        "step": c.step,
        "is_final": c.is_final,
        "metrics": c.metrics,
        "metrics_step": c.metrics_step,
        "metric_steps": c.metric_steps,
        # Left by an earlier run in a reused output folder: its values are its own state's.
        "earlier_run": c.earlier_run,
        "score": score,
        "best": c.name == d.ranking.best,
        "url": checkpoint_url(d.run, c.name),
        "size": size,
        # Its sweeps' newest result per prompt set (jobs/sweep.py).
        "evaluations": evaluations or [],
    }


def run_detail_json(
    d: RunDetail,
    sizes: Mapping[str, int],
    lineage: Lineage,
    page: Page[int] | None = None,
    evaluated: Mapping[str, list[dict[str, Any]]] | None = None,
    prompt_sets: Sequence[str] = (),
) -> dict[str, Any]:
    """A run with one page of its checkpoints (`page`: of their indexes, as the run page shows
    them; the first when not given); `prompt_sets`: those its pass rate can rank by."""
    ranking = d.ranking
    cfg = config_of(d.run)
    if page is None:
        page = page_of(range(len(d.checkpoints)), 1, CHECKPOINTS_PER_PAGE)
    chain = run_lineage_json(d.run, lineage)
    evaluated = evaluated or {}
    return {
        **run_summary_json(d),
        "rank": {
            "rule": ranking.rule,
            "metric": ranking.metric,
            "order": ranking.order,
            # How the best is chosen, in discovery's own words (the page prints it too).
            "how": ranking.how,
            # The training-metric rule's pick, and where checkpoints were evaluated on a
            # prompt set, the sentence setting it against the best pass rate (else null).
            "training_best": ranking.training_best,
            "verdict": ranking.verdict,
            # Each rank=eval:<prompt set> this run can be ranked by, the default first.
            "prompt_sets": list(prompt_sets),
        },
        "rank_notes": list(ranking.notes),
        # Checkpoints without a score under the rule, and why, in a sentence (null when none).
        "unscored": ranking.unscored,
        "unscored_note": ranking.unscored_note,
        # trainer_state.json files that are there but gave nothing, where a run has no metrics.
        "unread_files": [{"file": f, "problem": p} for f, p in d.unread_states],
        "header": header_json(d),
        # One name per idea (discovery.config), and the file each value came from.
        "config": cfg.values(),
        "config_sources": cfg.sources(),
        "lineage": d.lineage,
        "size_on_disk": sum(sizes.values()),
        "checkpoints": [
            checkpoint_row_json(
                d,
                d.checkpoints[i],
                ranking.scores[i],
                sizes.get(d.checkpoints[i].name),
                evaluated.get(d.checkpoints[i].name),
            )
            for i in page
        ],
        "checkpoints_total": page.paginator.count,
        "checkpoints_page": page.number,
        "checkpoints_pages": page.paginator.num_pages,
        "published": chain["published"],
        "models": chain["models"],
    }


def checkpoint_detail_json(
    d: RunDetail,
    c: Checkpoint,
    files: list[FileInfo],
    adapter: dict[str, Any] | None,
    npz_state: dict[str, Any] | None = None,
    evaluations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "trainer": d.run.trainer.id,
        "run": d.run.name,
        "name": c.name,
        "step": c.step,
        "is_final": c.is_final,
        "metrics": c.metrics,
        "metrics_step": c.metrics_step,
        "metric_steps": c.metric_steps,
        # Left by an earlier run in a reused output folder: its values are its own state's.
        "earlier_run": c.earlier_run,
        "best": c.name == d.ranking.best,
        "path": str(c.path),
        "files": [{"name": f.name, "size": f.size} for f in files],
        "adapter": adapter,
        # An MLX checkpoint (.npz): the trainer state saved in it, where it can be read.
        "npz_state": npz_state,
        # Its sweeps' newest result per prompt set, as the run's JSON gives each checkpoint.
        "evaluations": evaluations or [],
        "url": checkpoint_url(d.run, c.name),
        "run_url": run_url(d.run),
    }


def header_json(d: RunDetail) -> dict[str, Any]:
    h = dataclasses.asdict(d.header)
    h.pop("present")
    return {**h, "lora": {"rank": d.header.lora_rank, "alpha": d.header.lora_alpha}}


def history_json(history: History) -> dict[str, Any]:
    return {
        "steps": history.steps,
        "series": {name: history.column(name) for name in history.metric_names()},
        # What each series' numbers are (discovery.metrics.unit): "%" a share of 1, "lr", "s"…
        "units": {name: unit(name) for name in history.metric_names()},
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
        "digest": m.digest,
        "blobs": list(m.blobs) if m.blobs is not None else None,
        "root": m.root,
        "publisher": m.publisher,
    }


# The served models of one page, linked, by server name and model name.
ServedLinks = dict[str, dict[str, Served]]


def models_json(
    s: BackendStatus, page: int, links: ServedLinks | None = None, served_by: str | None = None
) -> dict[str, Any]:
    """One page of a server's models (loaded first), each with the run it came from, and how
    many there are in all."""

    def model(m: ModelInfo) -> dict[str, Any]:
        data = model_json(m)
        if links is not None and served_by is not None:
            served = links.get(served_by, {}).get(m.id)
            data["lineage"] = served_link_json(served) if served else None
        return data

    return {
        "models": [model(m) for m in share_of(s.models, page, MODELS_PER_PAGE)],
        "model_count": len(s.models),
        "loaded_count": s.loaded_count,
        "models_page": page,
        "models_pages": page_count(len(s.models), MODELS_PER_PAGE),
    }


def backend_json(
    s: BackendStatus, links: ServedLinks | None = None, models_page: int = 1
) -> dict[str, Any]:
    return {
        "name": s.backend.name,
        "kind": s.backend.kind,
        "url": s.backend.url,
        "available": s.available,
        "error": s.error,
        "version": s.version,
        "latency_ms": s.latency_ms,
        "api": s.api,
        **models_json(s, models_page, links, s.backend.name),
        "last_seen": None
        if s.last_seen is None
        else last_seen_json(s.last_seen, models_page, links),
    }


def last_seen_json(
    s: BackendStatus, models_page: int = 1, links: ServedLinks | None = None
) -> dict[str, Any]:
    return {
        "at": datetime.fromtimestamp(s.checked_at, tz=UTC).isoformat(),
        "version": s.version,
        **models_json(s, models_page, links, s.backend.name),
    }


def prompt_set_json(item: Listed) -> dict[str, Any]:
    s = item.prompt_set
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
                "question": c.question,
                "response": c.response,
                "tools_called": list(c.tools_called),
            }
            for c in e.cases
        ]
    return data


def overview_json(context: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "run_count": context["run_count"],
        "running": [run_summary_json(d) for d in context["running"]],
        "trainers": [
            {"trainer": trainer, "run_count": count, "runs": [run_summary_json(d) for d in details]}
            for trainer, details, count in context["newest"]
        ],
        "backends": [backend_json(s) for s in context["statuses"]],
        "prompt_sets": [prompt_set_json(x) for x in context["prompt_sets"]],
        "evaluations": [evaluation_json(e) for e in context["evaluations"]],
    }


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


def job_json(job: EvaluationJob, output: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": job.pk,
        "url": reverse("tuner-job-detail", args=[job.pk]),
        "status": job.status,
        "backend": job.backend,
        "backend_kind": job.backend_kind,
        "model": job.model,
        "prompt_set": job.prompt_set,
        "tags": job.tags,
        "limit": job.limit,
        "temperature": job.temperature,
        "seed": job.seed,
        "done": job.done,
        "total": job.total,
        "passed": job.passed,
        "result": job.result,
        "result_url": reverse("tuner-evaluation-detail", args=[job.result]) if job.result else None,
        "error": job.error or None,
        "cancel_requested": job.cancel_requested,
        "created_by": job.created_by.get_username() if job.created_by else None,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
    }
    if output:
        data["exit_code"] = job.exit_code
        data["output"] = job.output_lines
    return data


def offer_json(offer: Offer) -> dict[str, Any]:
    """What the form to start an evaluation offers now, for scripts."""
    return {
        "backends": [
            {
                "name": s.backend.name,
                "kind": s.backend.kind,
                "url": s.backend.url,
                "available": s.available,
                "error": s.error,
                "models": [m.id for m in s.models],
            }
            for s in offer.statuses
        ],
        "prompt_sets": [
            {"name": p.name, "count": p.count, "tags": [t for t, _ in p.top_tags(1000)]}
            for p in offer.prompt_sets
        ],
    }


def origin_json(origin: Origin | None) -> dict[str, Any]:
    if origin is None:
        return {"run": None, "run_url": None, "checkpoint": None, "checkpoint_url": None}
    run, name = origin.run, origin.checkpoint
    return {
        "run": run.id,
        "run_url": run_url(run),
        "checkpoint": name,
        "checkpoint_url": checkpoint_url(run, name) if name and origin.checkpoint_exists else None,
    }


def link_json(link: Link | None) -> dict[str, Any]:
    return {
        "link": link.kind if link else None,
        "how": link.how if link else None,
        **origin_json(link.origin if link else None),
    }


def publication_json(p: Publication, digests: Mapping[Any, str | None]) -> dict[str, Any]:
    return {
        "repo": p.repo,
        "huggingface_url": p.huggingface_url,
        "folder": p.name,
        "path": str(p.folder),
        **origin_json(Origin(p.run, p.checkpoint, p)),
        "uploaded_at": p.uploaded_at.isoformat() if p.uploaded_at else None,
        "formats": list(p.formats),
        "labels": list(p.labels),
        "folders": [{"name": f.name, "format": f.format, "size": f.size} for f in p.folders],
        "gguf": [
            {
                "name": g.name,
                "quantization": g.quantization,
                "size": g.size,
                "present": g.present,
                "sha256": digests.get(g.path) if g.path else None,
                "hashing": g.path is not None and digests.get(g.path) is None,
            }
            for g in p.gguf
        ],
        "error": p.error,
    }


def served_json(s: Served) -> dict[str, Any]:
    return {
        "backend": s.backend.name,
        "kind": s.backend.kind,
        "name": s.name,
        "loaded": s.loaded,
        "size_vram": s.model.size_vram,
        "quantization": s.model.quantization,
        "stale": s.stale,
        "hashing": s.hashing,
        **link_json(s.link),
    }


def evaluated_json(ev: Evaluated) -> dict[str, Any]:
    e = ev.evaluation
    return {
        "name": e.name,
        "prompt_set": e.prompt_set,
        "pass_rate": e.pass_rate,
        "passed": e.passed,
        "total": e.total,
        "url": reverse("tuner-evaluation-detail", args=[e.name]),
        "model": e.model,
        "generated_at": e.generated_at.isoformat() if e.generated_at else None,
        **link_json(ev.link),
    }


def model_row_json(m: Model, digests: Mapping[Any, str | None]) -> dict[str, Any]:
    origin = origin_json(m.origin)
    return {
        "id": m.id,
        "url": model_url(m),
        "title": m.title,
        "repo": m.repo,
        "names": list(m.names),
        "huggingface_url": m.publications[0].huggingface_url if m.publications else None,
        **origin,
        "link": m.link,
        "sources": [origin_json(s) for s in m.origins],
        "served": [served_json(s) for s in m.served],
        "evaluations": [evaluated_json(e) for e in m.evaluations],
        "latest": [evaluated_json(e) for e in m.latest()],
    }


def model_detail_json(m: Model, digests: Mapping[Any, str | None]) -> dict[str, Any]:
    return {
        **model_row_json(m, digests),
        "publications": [publication_json(p, digests) for p in m.publications],
    }


def served_link_json(s: Served) -> dict[str, Any]:
    return {
        "model_id": s.model_id,
        "model_url": model_url(s),
        "hashing": s.hashing,
        **link_json(s.link),
    }


def run_lineage_json(run: Run, lineage: Lineage) -> dict[str, Any]:
    digests = lineage.catalog.digests
    return {
        "run": run.id,
        "url": run_url(run),
        "published": [publication_json(p, digests) for p in lineage.catalog.of_run(run)],
        "models": [model_row_json(m, digests) for m in lineage.for_run(run)],
    }


def evaluation_link_json(lineage: Lineage, name: str) -> dict[str, Any]:
    found = lineage.of_evaluation(name)
    if found is None:
        return {"model_id": None, "model_url": None, "served": [], **link_json(None)}
    m, ev = found
    return {
        "model_id": m.id,
        "model_url": model_url(m),
        "served": [
            {"backend": s.backend.name, "name": s.name, "loaded": s.loaded} for s in ev.served
        ],
        **link_json(ev.link),
    }


def evaluation_comparison_json(c: EvaluationComparison, lineage: Lineage) -> dict[str, Any]:
    def cell(x: Cell | None) -> dict[str, Any] | None:
        return None if x is None else dataclasses.asdict(x)

    return {
        "evaluations": [
            {**evaluation_json(e), **evaluation_link_json(lineage, e.name)} for e in c.evaluations
        ],
        "overall": [cell(x) for x in c.overall],
        "by_tag": [{"tag": tag, "results": [cell(x) for x in cells]} for tag, cells in c.tags],
        "differing_cases": [
            {
                "case_id": d.case_id,
                "tags": list(d.tags),
                "passed": list(d.outcomes),
                "change": d.change,
            }
            for d in c.differing
        ],
        "partial_cases": c.partial,
    }


def evaluation_list_json(evaluations: list[Evaluation], lineage: Lineage) -> dict[str, Any]:
    return {
        "evaluations": [
            evaluation_json(e) | evaluation_link_json(lineage, e.name) for e in evaluations
        ]
    }
