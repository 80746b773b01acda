"""Sweeps: one evaluation job per checkpoint of a run, queued in order on one server, each
serving its checkpoint's LoRA adapter (`discovery.serving`) while it holds the server and
taking it down after, unless the sweep keeps it.

A sweep is no job itself: its evaluations are ordinary evaluation jobs (listed, cancelled and
followed like any other, one per server at a time, `lifecycle`), so its state is theirs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from discovery import serving
from discovery.backends import Backend
from discovery.evaluations import wilson
from tuner_site.models import EvaluationJob, Sweep

from . import lifecycle

logger = logging.getLogger("tuner")
Status = EvaluationJob.Status
ACTIVE = EvaluationJob.ACTIVE

# What each checkpoint shows: its job's status, or where a running one is. The words a job's
# status shares are the model's choices, so the two lists cannot drift.
SERVING, EVALUATING, DONE = "serving", "evaluating", "done"
CHECKPOINT_STATUS = {
    Status.QUEUED: Status.QUEUED.value,
    Status.SUCCEEDED: DONE,
    Status.FAILED: Status.FAILED.value,
    Status.CANCELLED: Status.CANCELLED.value,
}


@dataclass(frozen=True)
class Planned:
    """A checkpoint to evaluate: its name, its adapter, the name it is served under."""

    checkpoint: str
    adapter: serving.Adapter
    model: str


def create_sweep(
    trainer: str,
    run: str,
    fields: dict[str, Any],
    backend: Backend,
    planned: list[Planned],
    root: Path,
    user: AbstractBaseUser | AnonymousUser,
    warnings: list[str] | None = None,
) -> Sweep:
    """The sweep and its jobs, queued in checkpoint order (the server takes them in id order)."""
    api = serving.api_for(backend.kind)
    with transaction.atomic():
        sweep = Sweep.objects.create(
            trainer=trainer,
            run=run,
            backend=backend.name,
            backend_kind=backend.kind,
            backend_url=backend.url,
            base=fields["base"] if api == "ollama" else "",
            prompt_set=fields["prompt_set"],
            tags=list(fields["tags"]),
            limit=fields["limit"],
            temperature=fields["temperature"],
            seed=fields["seed"],
            keep=fields["keep"],
            warnings=list(warnings or ()),
            created_by_id=user.pk if user.is_authenticated else None,
        )
        jobs = [
            EvaluationJob.objects.create(
                sweep=sweep,
                checkpoint=p.checkpoint,
                adapter_path=str(p.adapter.folder.relative_to(root)),
                backend=backend.name,
                backend_kind=backend.kind,
                backend_url=backend.url,
                model=serving.ollama_name(p.model) if api == "ollama" else p.model,
                prompt_set=sweep.prompt_set,
                tags=sweep.tags,
                limit=sweep.limit,
                temperature=sweep.temperature,
                seed=sweep.seed,
                created_by_id=sweep.created_by_id,
            )
            for p in planned
        ]
    for i, job in enumerate(jobs):
        if (error := lifecycle.enqueue(job)) is not None:
            # The queue is down or silent: each other job would wait as long to say the same.
            for rest in jobs[i + 1 :]:
                lifecycle.not_queued(rest, error)
            break
    return sweep


def cancel_sweep(sweep: Sweep) -> bool:
    """Cancel what is left: queued jobs end now, the running one stops and its model goes.
    False when nothing was left to cancel."""
    Sweep.objects.filter(pk=sweep.pk).update(cancelled=True)
    cancelled = False
    # The running job first, then the queue behind it, so no queued one starts meanwhile.
    for job in sorted(sweep.jobs.filter(status__in=ACTIVE), key=lambda j: j.is_queued):
        cancelled = lifecycle.cancel(job) or cancelled
    return cancelled


def with_adapter(job: Any, root: Path, evaluate: Callable[[], None]) -> None:
    """Serve the job's checkpoint, run `evaluate` (which ends the job), and take the model
    down after, whatever happened, unless the sweep keeps it."""
    sweep = job.sweep
    api = serving.api_for(job.backend_kind)
    found = serving.servable_at(job.checkpoint, root / job.adapter_path, root)
    if api is None or found.adapter is None:
        why = found.reason or f"a {job.backend_kind} server cannot be given adapters"
        lifecycle.finish(job, Status.FAILED, f"{job.checkpoint} cannot be served: {why}.")
        return
    adapter = found.adapter
    lifecycle.heartbeat(job, serving=SERVING)

    def serve() -> serving.Served:
        return serving.serve(api, job.backend_url, adapter, job.model, root, sweep.base)

    try:
        served = _beating(job, serve)
    except serving.ServingError as exc:
        _sweep_up(job, api)
        lifecycle.finish(job, Status.FAILED, f"Could not serve {job.checkpoint}: {exc}")
        return
    except BaseException:
        _sweep_up(job, api)
        raise
    lifecycle.heartbeat(job, serving="served", adapter_digest=served.weights_digest)
    _record(job, root, served)
    try:
        if lifecycle.stop_requested(job):
            lifecycle.finish(job, Status.CANCELLED)
            return
        evaluate()
        result = EvaluationJob.objects.filter(pk=job.pk).values_list("result", flat=True).first()
        if result:
            _record(job, root, served, result)
    finally:
        if sweep.keep:
            _note(job, "kept")
        else:
            _remove(job, served)


def _record(job: Any, root: Path, served: serving.Served, result: str | None = None) -> None:
    """Say in the workspace what was served from which checkpoint (and the result made on it),
    for the lineage of /models/; the sweep goes on when the record cannot be written."""
    try:
        serving.record(root, f"{job.sweep.trainer}/{job.sweep.run}", served, result)
    except OSError as exc:
        logger.warning("job %s: what it served was not recorded: %s", job.pk, exc)


def _sweep_up(job: Any, api: str) -> None:
    """After a failed or interrupted serve: remove a model it may have made (created, then the
    answer broke), quietly when the server cannot be reached or never had it."""
    made = serving.Served(api, job.backend_url, job.model, job.checkpoint, "", "", None)
    try:
        gone = serving.unserve(made)
    except serving.ServingError:
        gone = False
    _note(job, "removed" if gone else "")


def remove_left(job: Any) -> None:
    """After a sweep's job was taken for lost (its worker died): remove the model it may have
    left on the server, within the server deadline, since a page may be the one asking."""
    if job.serving not in (SERVING, "served"):
        return
    if job.sweep.keep:
        _note(job, "kept")
        return
    api = serving.api_for(job.backend_kind) or job.backend_kind
    served = serving.Served(api, job.backend_url, job.model, job.checkpoint, "", "", None)
    _remove(job, served, settings.TUNER_BACKEND_TIMEOUT)


def _remove(job: Any, served: serving.Served, seconds: float = serving.REMOVE_S) -> None:
    try:
        gone = serving.unserve(served, seconds)
    except serving.ServingError as exc:
        logger.warning("job %s: %s was not removed: %s", job.pk, served.model, exc)
        _note(job, f"not removed: {exc}"[:500])
        return
    if gone or job.serving:
        _note(job, "removed")


def _note(job: Any, text: str) -> None:
    EvaluationJob.objects.filter(pk=job.pk).update(serving=text)
    job.serving = text


def _beating(job: Any, work: Callable[[], serving.Served]) -> serving.Served:
    """Run `work` (bounded by its own deadlines) in a thread while the job reports, so a long
    upload or conversion is not taken for a lost worker."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # handed to the job's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(lifecycle.POLL_SECONDS)
        if thread.is_alive():
            lifecycle.check_in(job)
    if "error" in box:
        raise box["error"]
    return box["value"]


def checkpoint_status(job: EvaluationJob) -> str:
    if job.status == Status.RUNNING:
        return SERVING if job.serving == SERVING or not job.serving else EVALUATING
    return CHECKPOINT_STATUS[Status(job.status)]


def sweep_status(sweep: Sweep, jobs: list[EvaluationJob]) -> str:
    statuses = {j.status for j in jobs}
    if statuses & set(ACTIVE):
        if sweep.cancelled:
            return Status.RUNNING  # the running job is stopping
        return Status.QUEUED if statuses == {Status.QUEUED} else Status.RUNNING
    if not sweep.keep and any(_taking_down(j) for j in jobs):
        return Status.RUNNING  # ended once its last model is gone, as a script expects
    if sweep.cancelled or statuses == {Status.CANCELLED}:
        return Status.CANCELLED
    return Status.SUCCEEDED if statuses == {Status.SUCCEEDED} else Status.FAILED


def _taking_down(job: EvaluationJob) -> bool:
    """Its job has ended and its model is being removed (with_adapter removes it just after),
    for at most the time removal is given: a worker killed in between leaves no sweep running."""
    if job.serving != "served" or job.finished_at is None:
        return False
    return timezone.now() - job.finished_at < timedelta(seconds=serving.REMOVE_S)


def sweep_json(sweep: Sweep) -> dict[str, Any]:
    jobs = list(sweep.jobs.order_by("id"))
    rows = []
    for j in jobs:
        rows.append(
            {
                "checkpoint": j.checkpoint,
                "status": checkpoint_status(j),
                "done": j.done,
                "passed": j.passed if j.total is not None else None,
                "total": j.total,
                "result": j.result,
                "error": j.error or None,
                "job": j.pk,
                "model": j.model,
                "served": j.serving or None,
                "adapter_digest": j.adapter_digest or None,
            }
        )
    return {
        "id": sweep.pk,
        "url": reverse("tuner-sweep-detail", args=[sweep.pk]),
        "status": sweep_status(sweep, jobs),
        "trainer": sweep.trainer,
        "run": sweep.run,
        "backend": sweep.backend,
        "base": sweep.base or None,
        "prompt_set": sweep.prompt_set,
        "keep": sweep.keep,
        "cancel_requested": sweep.cancelled,
        "warnings": list(sweep.warnings or ()),
        "done": sum(j.status in EvaluationJob.ENDED for j in jobs),
        "total": len(jobs),
        "checkpoints": rows,
    }


# Sweeps of a run its page looks through for running ones (newest first).
RUN_PAGE_SWEEPS = 5


def run_sweeps(trainer: str, run: str) -> tuple[list[dict[str, Any]], bool]:
    """What a run's page shows of its sweeps: the ones still queued or running, else the
    newest one that ended; and whether any is still going (the panel polls while one is)."""
    recent = [
        sweep_json(s) for s in Sweep.objects.filter(trainer=trainer, run=run)[:RUN_PAGE_SWEEPS]
    ]
    going = [s for s in recent if s["status"] in (Status.QUEUED, Status.RUNNING)]
    return (going or recent[:1]), bool(going)


def checkpoint_evaluations(trainer: str, run: str) -> dict[str, list[dict[str, Any]]]:
    """Each checkpoint's newest sweep result per prompt set: passed of total, the pass rate and
    its 95 % Wilson interval, and the Evaluator's result file."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    jobs = EvaluationJob.objects.filter(
        sweep__trainer=trainer, sweep__run=run, status=Status.SUCCEEDED, result__isnull=False
    ).order_by("-id")
    for j in jobs:
        per_set = found.setdefault(j.checkpoint, {})
        if j.prompt_set in per_set or not j.total or not 0 <= j.passed <= j.total:
            continue  # no cases, or more passed than ran (a misread output): no pass rate
        low, high = wilson(j.passed, j.total)
        per_set[j.prompt_set] = {
            "prompt_set": j.prompt_set,
            "passed": j.passed,
            "total": j.total,
            "pass_rate": j.passed / j.total,
            "low": low,
            "high": high,
            "result": j.result,
            "url": reverse("tuner-evaluation-detail", args=[j.result]),
        }
    return {c: sorted(sets.values(), key=lambda e: e["prompt_set"]) for c, sets in found.items()}
