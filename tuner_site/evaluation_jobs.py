"""Evaluation jobs: queued from the dashboard, run by a tasks worker, one per server at a time.

A job's task claims it only when its server is free and no older job waits for that server
(the database's one-running-job-per-server constraint settles races between workers); a
finished, cancelled or lost job hands its server to the next queued job by enqueueing it.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import subprocess
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_tasks import TaskContext, task

from discovery.backends import Backend
from discovery.prompt_sets import get_prompt_set

from . import evaluator_run, workspace
from .models import EvaluationJob

logger = logging.getLogger("tuner")
Status = EvaluationJob.Status

POLL_SECONDS = 0.5  # how often a running job saves new output and looks for a cancel
HEARTBEAT_SECONDS = 5.0  # how often it reports while the Evaluator prints nothing
CANCEL_GRACE_SECONDS = 5.0  # SIGTERM, then SIGKILL after this long
# A running job whose worker has not reported for this long is taken for lost.
LOST_AFTER = timedelta(seconds=60)


def create_job(
    fields: dict[str, Any], backend: Backend, user: AbstractBaseUser | AnonymousUser
) -> EvaluationJob:
    job = EvaluationJob.objects.create(
        backend=backend.name,
        backend_kind=backend.kind,
        backend_url=backend.url,
        model=fields["model"],
        prompt_set=fields["prompt_set"],
        tags=list(fields["tags"]),
        limit=fields["limit"],
        temperature=fields["temperature"],
        seed=fields["seed"],
        created_by_id=user.pk if user.is_authenticated else None,
    )
    enqueue(job)
    job.refresh_from_db()
    return job


def enqueue(job: EvaluationJob) -> None:
    try:
        result = run_evaluation.enqueue(job.pk)
    except Exception as exc:  # a queue that is down must not leave a job queued forever
        logger.exception("could not queue evaluation job %s", job.pk)
        _finish(job.pk, Status.FAILED, f"The job could not be queued: {exc}")
        return
    EvaluationJob.objects.filter(pk=job.pk, task_id="").update(task_id=result.id)


def kick(backend: str) -> None:
    """Start the oldest job queued for a server, if that server is free."""
    if EvaluationJob.objects.running_on(backend).exists():
        return
    if (job := EvaluationJob.objects.queued_on(backend).first()) is not None:
        enqueue(job)


def cancel(job: EvaluationJob) -> EvaluationJob:
    """A queued job ends here; a running one is stopped by its worker, which polls the flag."""
    now = timezone.now()
    if EvaluationJob.objects.filter(pk=job.pk, status=Status.QUEUED).update(
        status=Status.CANCELLED, finished_at=now
    ):
        kick(job.backend)
    else:
        EvaluationJob.objects.filter(pk=job.pk, status=Status.RUNNING).update(cancel_requested=True)
    job.refresh_from_db()
    return job


@task(takes_context=True)
def run_evaluation(context: TaskContext, job_id: int) -> str:
    job = claim(job_id, str(context.task_result.id))
    if job is None:
        return "not started: not queued any more, or its server is busy"
    try:
        _run(job)
    except Exception as exc:
        _finish(job.pk, Status.FAILED, f"The dashboard's worker failed while it ran: {exc!r}")
        raise
    except BaseException:
        # A worker told to stop at once (a second Ctrl-C or SIGTERM): the job says so.
        _finish(job.pk, Status.FAILED, "Its worker was stopped while it ran.")
        raise
    finally:
        kick(job.backend)
    return EvaluationJob.objects.get(pk=job.pk).status


def claim(job_id: int, task_id: str) -> EvaluationJob | None:
    now = timezone.now()
    try:
        with transaction.atomic():
            job = EvaluationJob.objects.select_for_update().filter(pk=job_id).first()
            if job is None or job.status != Status.QUEUED:
                return None
            jobs = EvaluationJob.objects
            if jobs.running_on(job.backend).exists():
                return None
            if jobs.queued_on(job.backend).filter(pk__lt=job.pk).exists():
                return None  # first come, first served: that job's turn comes first
            job.status = Status.RUNNING
            job.started_at = job.heartbeat_at = now
            job.task_id = task_id
            job.worker_host = socket.gethostname()
            job.worker_pid = os.getpid()
            job.save(
                update_fields=[
                    "status",
                    "started_at",
                    "heartbeat_at",
                    "task_id",
                    "worker_host",
                    "worker_pid",
                ]
            )
    except IntegrityError:
        return None  # another worker started a job on this server at the same moment
    return job


def _run(job: EvaluationJob) -> None:
    try:
        root = workspace.current().root
    except workspace.WorkspaceMissing as exc:
        return _finish(job.pk, Status.FAILED, exc.message())
    if problem := evaluator_run.missing_parts(root):
        return _finish(job.pk, Status.FAILED, problem)
    prompt_set = get_prompt_set(root, job.prompt_set)
    if prompt_set is None:
        return _finish(
            job.pk, Status.FAILED, f"The prompt set {job.prompt_set!r} is no longer there."
        )
    if problem := _server_problem(job):
        return _finish(job.pk, Status.FAILED, problem)
    if _cancel_requested(job.pk):
        return _finish(job.pk, Status.CANCELLED)

    results = root / "Evaluator" / "results"
    stem = reserve_stem(job.pk, results)
    args = evaluator_run.Arguments(
        kind=job.backend_kind,
        url=job.backend_url,
        model=job.model,
        prompt_file=prompt_set.path,
        output=results / f"{stem}.json",
        markdown=results / f"{stem}.md",
        temperature=job.temperature,
        tags=tuple(job.tags),
        limit=job.limit,
        seed=job.seed,
    )
    python = settings.TUNER_EVALUATOR_PYTHON
    try:
        proc = evaluator_run.start(python, args, root, os.environ)
    except OSError as exc:
        return _finish(job.pk, Status.FAILED, f"Could not start the Evaluator with {python}: {exc}")
    EvaluationJob.objects.filter(pk=job.pk).update(evaluator_pid=proc.pid)
    progress = evaluator_run.Progress()
    reader = threading.Thread(target=progress.read, args=(proc.stdout,), daemon=True)
    reader.start()
    try:
        cancelled = _follow(job.pk, proc, progress)
    except BaseException:
        evaluator_run.stop_group(proc, CANCEL_GRACE_SECONDS)
        raise
    reader.join(timeout=10)
    has_result = args.output.is_file()  # written by the Evaluator only, at the very end
    status: str
    if cancelled:
        status, error = Status.CANCELLED, ""
    else:
        status, error = evaluator_run.outcome(proc.returncode, progress, has_result)
    _finish(
        job.pk,
        status,
        error,
        exit_code=proc.returncode,
        result=stem if has_result else None,
        **progress.snapshot(),
    )


def _follow(job_id: int, proc: subprocess.Popen, progress: evaluator_run.Progress) -> bool:
    """Save progress and a heartbeat while the Evaluator runs; stop it when cancelled."""
    saved, beat = 0, time.monotonic()
    while True:
        try:
            proc.wait(timeout=POLL_SECONDS)
            return False
        except subprocess.TimeoutExpired:
            pass
        if progress.version != saved or time.monotonic() - beat >= HEARTBEAT_SECONDS:
            saved, beat = progress.version, time.monotonic()
            EvaluationJob.objects.filter(pk=job_id).update(
                heartbeat_at=timezone.now(), **progress.snapshot()
            )
        if _cancel_requested(job_id):
            evaluator_run.stop_group(proc, CANCEL_GRACE_SECONDS)
            return True


def _server_problem(job: EvaluationJob) -> str | None:
    status = workspace.probe(Backend(job.backend, job.backend_kind, job.backend_url))
    if not status.available:
        return status.error or f"{job.backend} did not answer."
    served = [m.id for m in status.models]
    if job.model not in served:
        return (
            f"The model {job.model!r} is not on {job.backend} any more "
            f"(it serves {', '.join(served) or 'no models'})."
        )
    return None


def _cancel_requested(job_id: int) -> bool:
    return EvaluationJob.objects.filter(pk=job_id, cancel_requested=True).exists()


def reserve_stem(job_id: int, results: Path, now: datetime | None = None) -> str:
    """run_<local time>, as the upstream menu names results; _2, _3… when that is taken."""
    base = "run_" + (now or datetime.now()).strftime("%Y%m%d_%H%M%S")
    for n in itertools.count(1):
        stem = base if n == 1 else f"{base}_{n}"
        if (results / f"{stem}.json").exists() or (results / f"{stem}.md").exists():
            continue
        try:
            with transaction.atomic():
                EvaluationJob.objects.filter(pk=job_id).update(output_stem=stem)
        except IntegrityError:
            continue  # another job took this name in the same second
        return stem
    raise AssertionError("unreachable")


def _finish(job_id: int, status: str, error: str = "", **fields: Any) -> None:
    EvaluationJob.objects.filter(pk=job_id).update(
        status=status, error=error, finished_at=timezone.now(), **fields
    )


def fail_lost_jobs(starting_worker: bool = False) -> list[EvaluationJob]:
    """Running jobs whose worker is gone: failed with the reason, their Evaluator stopped.

    A worker calls this as it starts; pages call it too, so a dead job never shows as
    running for long. On this machine a gone worker process tells; elsewhere, silence does.
    """
    lost = []
    for job in EvaluationJob.objects.filter(status=Status.RUNNING):
        reason = _lost_reason(job, starting_worker)
        if reason and _end_lost(job, reason):
            lost.append(job)
    for backend in {job.backend for job in lost}:
        kick(backend)
    return lost


def _lost_reason(job: EvaluationJob, starting_worker: bool) -> str | None:
    worker = f"pid {job.worker_pid} on {job.worker_host}"
    pid = job.worker_pid
    if (
        job.worker_host == socket.gethostname()
        and pid is not None
        and ((starting_worker and pid == os.getpid()) or not evaluator_run.pid_alive(pid))
    ):
        return f"Its worker ({worker}) stopped while it ran; it was found gone at {_now()}."
    heartbeat = job.heartbeat_at or job.started_at
    if heartbeat is not None and timezone.now() - heartbeat > LOST_AFTER:
        return (
            f"Its worker ({worker}) stopped reporting at "
            f"{timezone.localtime(heartbeat):%H:%M:%S}; it was taken for lost at {_now()}."
        )
    return None


def _now() -> str:
    return f"{timezone.localtime():%Y-%m-%d %H:%M:%S}"


def _end_lost(job: EvaluationJob, reason: str) -> bool:
    status = Status.CANCELLED if job.cancel_requested else Status.FAILED
    ended = EvaluationJob.objects.filter(
        pk=job.pk, status=Status.RUNNING, heartbeat_at=job.heartbeat_at
    ).update(status=status, error=reason, finished_at=timezone.now())
    if not ended:
        return False  # its worker reported meanwhile, or another process ended it
    if job.worker_host == socket.gethostname() and job.evaluator_pid:
        evaluator_run.stop_orphan(job.evaluator_pid, CANCEL_GRACE_SECONDS)
    if job.task_id and apps.is_installed("django_tasks_db"):
        from django_tasks_db.models import DBTaskResult

        DBTaskResult.objects.filter(id=job.task_id, status="RUNNING").update(
            status="FAILED",
            finished_at=timezone.now(),
            exception_class_path="tuner_site.evaluation_jobs.WorkerLost",
            traceback=reason,
        )
    logger.warning("evaluation job %s: %s", job.pk, reason)
    return True
