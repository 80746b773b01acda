"""What every job goes through, whatever it runs: queued, claimed by one worker, followed with a
heartbeat while its child process runs, and ended once, by whoever decides first.

Each verdict is one conditional UPDATE on the job's row, so the database settles every race:
a cancel that got in before the verdict makes it cancelled (`_verdict`); a worker whose job
was meanwhile ended elsewhere (taken for lost, or claimed again after a re-queue) writes
nothing, because it only writes to a running row that still carries its task id.
"""

from __future__ import annotations

import enum
import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.apps import apps
from django.db import IntegrityError, OperationalError, transaction
from django.db.models import Case, Value, When
from django.utils import timezone

from . import process
from .models import Job

logger = logging.getLogger("tuner")
Status = Job.Status
J = TypeVar("J", bound=Job)

POLL_SECONDS = 0.5  # how often a running job saves new output and looks for a cancel
HEARTBEAT_SECONDS = 5.0  # how often it reports while its child prints nothing
STOP_GRACE_SECONDS = 5.0  # SIGTERM, then SIGKILL after this long
# A running job whose worker has not reported for this long is taken for lost. Every step a
# worker takes between two heartbeats is bounded well below it (the pre-start server check too).
LOST_AFTER = timedelta(seconds=60)

# Set by the worker's signal handler: the job it runs goes back to the queue.
STOPPING = threading.Event()


class WorkerStopping(Exception):
    """The worker was told to stop (SIGTERM, Ctrl-C) while it ran a job."""


class JobTaken(Exception):
    """The job was ended elsewhere while this worker ran it: its verdict stands."""


class Ending(enum.Enum):
    EXITED = enum.auto()
    CANCELLED = enum.auto()
    TIMED_OUT = enum.auto()


def kinds() -> list[type[Job]]:
    return [m for m in apps.get_models() if issubclass(m, Job)]


def is_locked(exc: BaseException) -> bool:
    """A database another program holds a write lock on (SQLite), or a lock wait timeout."""
    text = str(exc).lower()
    return isinstance(exc, OperationalError) and ("is locked" in text or "lock wait" in text)


def enqueue(job: Job) -> str | None:
    """Queue the job's task; when the queue cannot take it, fail the job and say why."""
    try:
        result = job.task().enqueue(job.pk)
    except Exception as exc:  # a queue that is down must not leave a job queued forever
        logger.exception("could not queue job %s", job.pk)
        error = f"The job could not be queued: {exc}"
        not_queued(job, error)
        return error
    type(job).objects.filter(pk=job.pk, task_id="").update(task_id=result.id)
    return None


def not_queued(job: Job, error: str) -> None:
    type(job).objects.filter(pk=job.pk, status=Status.QUEUED).update(
        status=Status.FAILED, error=error, finished_at=timezone.now()
    )


def kick(model: type[Job], lane: str) -> None:
    """Start the oldest job queued in a lane, if that lane is free."""
    if model.objects.running_on(lane).exists():
        return
    if (job := model.objects.queued_on(lane).first()) is not None:
        enqueue(job)


def cancel(job: Job) -> bool:
    """Cancel a job; False when it had already ended. A queued job ends here; a running one is
    stopped by its worker, and ends cancelled whatever its child does meanwhile (`_verdict`)."""
    model = type(job)
    if model.objects.filter(pk=job.pk, status=Status.QUEUED).update(
        status=Status.CANCELLED, finished_at=timezone.now()
    ):
        kick(model, job.lane)
        return True
    return bool(
        model.objects.filter(pk=job.pk, status=Status.RUNNING).update(cancel_requested=True)
    )


def run_again(job: J, **fields: Any) -> J:
    """A new job with the same arguments as a failed or cancelled one (but `fields`), queued
    now."""
    model = type(job)
    skip = {f.name for f in Job._meta.get_fields()} | {"id", *model.restart_fields}
    same = {f.name: getattr(job, f.name) for f in model._meta.concrete_fields if f.name not in skip}
    again = model.objects.create(**(same | fields))
    enqueue(again)
    again.refresh_from_db()
    return again


def claim(model: type[Job], job_id: int, task_id: str) -> Job | None:
    now = timezone.now()
    try:
        with transaction.atomic():
            job = model.objects.select_for_update().filter(pk=job_id).first()
            if job is None or job.status != Status.QUEUED:
                return None
            if model.objects.running_on(job.lane).exists():
                return None
            if model.objects.queued_on(job.lane).filter(pk__lt=job.pk).exists():
                return None  # first come, first served: that job's turn comes first
            job.status = Status.RUNNING
            job.started_at = job.heartbeat_at = now
            job.task_id = task_id
            job.worker_host = socket.gethostname()
            job.worker_pid = os.getpid()
            job.error = ""  # a re-queued job's note about its stop
            job.save(
                update_fields=[
                    "status",
                    "started_at",
                    "heartbeat_at",
                    "task_id",
                    "worker_host",
                    "worker_pid",
                    "error",
                ]
            )
    except IntegrityError:
        return None  # another worker started a job in this lane at the same moment
    return job


def run(model: type[Job], job_id: int, task_id: str, work: Callable[[Job], None]) -> str:
    """Claim a job and do its work; a worker told to stop puts it back in the queue."""
    job = claim(model, job_id, task_id)
    if job is None:
        return "not started: not queued any more, or its lane is busy"
    requeued = False
    try:
        work(job)
    except (WorkerStopping, SystemExit, KeyboardInterrupt):
        # A stop is no failure: the job starts again from the beginning with the next worker.
        requeued = requeue(job)
        if requeued:
            logger.warning(
                "Stopped: job %s is back in the queue and starts again from the beginning "
                "when a worker runs.",
                job.pk,
            )
        else:
            finish(job, Status.CANCELLED)
    except JobTaken:
        logger.warning("job %s was ended elsewhere while this worker ran it", job.pk)
    except Exception as exc:
        finish(job, Status.FAILED, f"The dashboard's worker failed while it ran: {exc!r}")
        raise
    finally:
        if not requeued:
            kick(model, job.lane)
    return str(model.objects.filter(pk=job.pk).values_list("status", flat=True).first())


def _mine(job: Job) -> Any:
    """The job's row while it is running under this claim, and only then."""
    return type(job).objects.filter(pk=job.pk, status=Status.RUNNING, task_id=job.task_id)


def heartbeat(job: Job, **fields: Any) -> bool:
    """Report that the job runs (with what it has done); False once it is not ours any more."""
    try:
        return bool(_mine(job).update(heartbeat_at=timezone.now(), **fields))
    except OperationalError as exc:
        if not is_locked(exc):
            raise
        logger.warning("job %s: the database is locked; its next heartbeat tries again", job.pk)
        return True


def stop_requested(job: Job) -> bool:
    try:
        return type(job).objects.filter(pk=job.pk, cancel_requested=True).exists()
    except OperationalError as exc:
        if not is_locked(exc):
            raise
        return False


def check_in(job: Job) -> None:
    """Between the steps before a job's child starts: stop, or report."""
    if STOPPING.is_set():
        raise WorkerStopping
    if not heartbeat(job):
        raise JobTaken


def follow(
    job: Job,
    proc: subprocess.Popen[bytes],
    tail: process.OutputTail,
    deadline: float | None = None,
) -> Ending:
    """Save output and a heartbeat while the child runs; stop it on cancel, on the deadline
    (time.monotonic()) or when the worker is told to stop."""
    saved, beat = -1, 0.0
    while True:
        try:
            proc.wait(timeout=POLL_SECONDS)
            return Ending.EXITED
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        if tail.version != saved or now - beat >= HEARTBEAT_SECONDS:
            saved, beat = tail.version, now
            if not heartbeat(job, **tail.snapshot()):
                process.stop_group(proc, STOP_GRACE_SECONDS)
                raise JobTaken
        if STOPPING.is_set():
            process.stop_group(proc, STOP_GRACE_SECONDS)
            raise WorkerStopping
        if deadline is not None and now > deadline:
            process.stop_group(proc, STOP_GRACE_SECONDS)
            return Ending.TIMED_OUT
        if stop_requested(job):
            process.stop_group(proc, STOP_GRACE_SECONDS)
            return Ending.CANCELLED


def _verdict(status: str, error: str) -> dict[str, Any]:
    """A cancel asked for before the verdict wins it: the user was told it would stop."""
    cancelled = When(cancel_requested=True, then=Value(Status.CANCELLED))
    return {
        "status": Case(cancelled, default=Value(status)),
        "error": Case(When(cancel_requested=True, then=Value("")), default=Value(error)),
    }


def _patiently(write: Callable[[], int]) -> int:
    """A verdict is written even through a database another program locks for a while (each
    try waits the connection's own timeout): a worker that gave up would leave its job running
    until a page took it for lost."""
    deadline = time.monotonic() + LOST_AFTER.total_seconds() / 2
    pause = 0.5
    while True:
        try:
            return write()
        except OperationalError as exc:
            if not is_locked(exc) or time.monotonic() > deadline:
                raise
        logger.warning("The database is locked; writing a job's verdict again in %g s.", pause)
        time.sleep(pause)
        pause = min(pause * 2, 5.0)


def finish(job: Job, status: str, error: str = "", **fields: Any) -> str | None:
    """End a job this worker runs; the status it ended with, or None when it was not ours."""
    now = timezone.now()
    verdict = _verdict(status, error)
    if not _patiently(lambda: _mine(job).update(finished_at=now, **verdict, **fields)):
        logger.warning("job %s had already ended elsewhere: its verdict stands", job.pk)
        return None
    return str(type(job).objects.filter(pk=job.pk).values_list("status", flat=True).first())


def requeue(job: Job) -> bool:
    """Put a job its worker stopped back in the queue, unless a cancel is waiting for it."""
    model = type(job)
    current = model.objects.filter(pk=job.pk).first()
    progress = current.progress_text() if current else ""
    note = (
        f"Its worker (pid {job.worker_pid} on {job.worker_host}) was stopped at {_now()} while it "
        f"ran{f' ({progress})' if progress else ''}; it starts again from the beginning when a "
        "worker runs."
    )
    back = _patiently(
        lambda: (
            _mine(job)
            .filter(cancel_requested=False)
            .update(
                status=Status.QUEUED,
                started_at=None,
                heartbeat_at=None,
                worker_host="",
                worker_pid=None,
                evaluator_pid=None,
                exit_code=None,
                output="",
                error=note,
                **model.restart_fields,
            )
        )
    )
    if back:
        enqueue(job)
    return bool(back)


# Workers poll every second or so: a task left this long has no worker free to take it.
WORKER_SILENT_AFTER = timedelta(seconds=30)


def waiting_since() -> datetime | None:
    """When the oldest task no worker has taken was queued, once that is WORKER_SILENT_AFTER
    ago: no worker is polling, or every one is busy (the database backend tells; others not)."""
    if not apps.is_installed("django_tasks_db"):
        return None
    from django_tasks_db.models import DBTaskResult

    oldest = (
        DBTaskResult.objects.ready()
        .order_by("enqueued_at")
        .values_list("enqueued_at", flat=True)
        .first()
    )
    if oldest is None or timezone.now() - oldest < WORKER_SILENT_AFTER:
        return None
    return oldest


def fail_lost_jobs(starting_worker: bool = False) -> list[Job]:
    """Running jobs whose worker is gone: failed with the reason, their child stopped.

    A worker calls this as it starts; pages call it too, so a dead job never shows as
    running for long. On this machine a gone worker process tells; elsewhere, silence does.
    """
    lost: list[Job] = []
    for model in kinds():
        for job in model.objects.filter(status=Status.RUNNING):
            reason = _lost_reason(job, starting_worker)
            if reason and _end_lost(job, reason):
                lost.append(job)
    for job in {(type(j), j.lane): j for j in lost}.values():
        kick(type(job), job.lane)
    return lost


def _lost_reason(job: Job, starting_worker: bool) -> str | None:
    worker = f"pid {job.worker_pid} on {job.worker_host}"
    pid = job.worker_pid
    if (
        job.worker_host == socket.gethostname()
        and pid is not None
        and ((starting_worker and pid == os.getpid()) or not process.pid_alive(pid))
    ):
        return f"Its worker ({worker}) stopped while it ran; it was found gone at {_now()}."
    # Silence only: a worker that reports within LOST_AFTER is never taken for lost.
    heartbeat = job.heartbeat_at or job.started_at
    if heartbeat is not None and timezone.now() - heartbeat > LOST_AFTER:
        return (
            f"Its worker ({worker}) stopped reporting at "
            f"{timezone.localtime(heartbeat):%H:%M:%S}; it was taken for lost at {_now()}."
        )
    return None


def _now() -> str:
    return f"{timezone.localtime():%Y-%m-%d %H:%M:%S}"


def _end_lost(job: Job, reason: str) -> bool:
    ended = (
        type(job)
        .objects.filter(pk=job.pk, status=Status.RUNNING, heartbeat_at=job.heartbeat_at)
        .update(finished_at=timezone.now(), **_verdict(Status.FAILED, reason))
    )
    if not ended:
        return False  # its worker reported meanwhile, or another process ended it
    if job.worker_host == socket.gethostname() and job.evaluator_pid:
        process.stop_orphan(job.evaluator_pid, STOP_GRACE_SECONDS, job.child_marker)
    try:
        job.after_lost()
    except Exception:  # a clean-up that fails must not keep the verdict from the others
        logger.exception("job %s: cleaning up after it failed", job.pk)
    if job.task_id and _queued_in_database(job):
        from django_tasks_db.models import DBTaskResult

        DBTaskResult.objects.filter(id=job.task_id, status="RUNNING").update(
            status="FAILED",
            finished_at=timezone.now(),
            exception_class_path="tuner_site.jobs.lifecycle.WorkerLost",
            traceback=reason,
        )
    logger.warning("job %s: %s", job.pk, reason)
    return True


def _queued_in_database(job: Job) -> bool:
    """Whether the job's task is a row of django-tasks-db's (another backend's task ids, such
    as django-tasks-rq's, are not even UUIDs)."""
    if not apps.is_installed("django_tasks_db"):
        return False
    from django_tasks_db import DatabaseBackend

    return isinstance(job.task().get_backend(), DatabaseBackend)
