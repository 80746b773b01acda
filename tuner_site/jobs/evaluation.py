"""Evaluation jobs: the workspace's Evaluator on one served model and one prompt set, queued
from the dashboard and run by a tasks worker, one per server at a time (`lifecycle`)."""

from __future__ import annotations

import contextlib
import itertools
import os
import stat
import threading
import time
from datetime import datetime
from pathlib import Path, PurePath
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django_tasks import TaskContext, task

from discovery.backends import Backend
from discovery.prompt_sets import get_prompt_set
from tuner_site import workspace
from tuner_site.models import EvaluationJob

from . import evaluator, lifecycle, process, sweep

Status = EvaluationJob.Status
RESULTS = PurePath("Evaluator", "results")  # inside the workspace, where the upstream menu writes


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
    lifecycle.enqueue(job)
    job.refresh_from_db()
    return job


@task(takes_context=True)
def run_evaluation(context: TaskContext, job_id: int) -> str:
    return lifecycle.run(EvaluationJob, job_id, str(context.task_result.id), _evaluate)


def _evaluate(job: Any) -> None:
    try:
        root = workspace.current().root
    except workspace.WorkspaceMissing as exc:
        lifecycle.finish(job, Status.FAILED, exc.message())
        return
    if problem := _problem(job, root):
        lifecycle.finish(job, Status.FAILED, problem)
        return
    prompt_set = get_prompt_set(root, job.prompt_set)
    assert prompt_set is not None and prompt_set.cases is not None  # _problem checked
    lifecycle.check_in(job)
    if job.sweep_id is not None:  # a sweep's: its checkpoint is served while it runs
        sweep.with_adapter(job, root, lambda: _evaluate_served(job, root, prompt_set))
    else:
        _evaluate_served(job, root, prompt_set)


def _evaluate_served(job: Any, root: Path, prompt_set: Any) -> None:
    if problem := _server_problem(job):
        lifecycle.finish(job, Status.FAILED, problem)
        return
    lifecycle.check_in(job)
    if lifecycle.stop_requested(job):
        lifecycle.finish(job, Status.CANCELLED)
        return

    results = root / RESULTS
    stem = reserve_stem(job.pk, results)
    written = False
    try:
        written = _run(job, root, evaluator.prompt_file(prompt_set.path), prompt_set.cases, stem)
    finally:
        if not written:
            release_stem(results, stem)


def _run(job: Any, root: Path, prompt_file: PurePath, cases: Any, stem: str) -> bool:
    """Run the Evaluator to its end; whether it wrote its result."""
    args = evaluator.Arguments(
        kind=evaluator.cli_backend(job.backend_kind),
        url=job.backend_url,
        model=job.model,
        prompt_file=prompt_file,
        output=RESULTS / f"{stem}.json",
        markdown=RESULTS / f"{stem}.md",
        temperature=job.temperature,
        tags=tuple(job.tags),
        limit=job.limit,
        seed=job.seed,
    )
    plan = evaluator.budget()
    count = evaluator.selected(cases, job.tags, job.limit)
    python = settings.TUNER_EVALUATOR_PYTHON
    env = evaluator.environment(os.environ)
    try:
        proc = process.start(evaluator.command(python, args), root, env, plan.limits)
    except OSError as exc:
        lifecycle.finish(job, Status.FAILED, f"Could not start the Evaluator with {python}: {exc}")
        return False
    deadline = time.monotonic() + plan.seconds(count)
    progress = evaluator.Progress()
    reader = threading.Thread(target=progress.read, args=(proc.stdout,), daemon=True)
    reader.start()
    try:
        lifecycle.heartbeat(job, evaluator_pid=proc.pid)
        ending = lifecycle.follow(job, proc, progress, deadline)
    except BaseException:
        process.stop_group(proc, lifecycle.STOP_GRACE_SECONDS)
        raise
    reader.join(timeout=10)
    # The Evaluator writes its result at the very end, into the file reserved for it.
    has_result = _written(root / args.output)
    status: str
    if ending is lifecycle.Ending.CANCELLED:
        status, error = Status.CANCELLED, ""
    elif ending is lifecycle.Ending.TIMED_OUT:
        status, error = Status.FAILED, evaluator.timed_out(plan, count, progress)
    else:
        status, error = evaluator.outcome(proc.returncode, progress, has_result, plan)
    lifecycle.finish(
        job,
        status,
        error,
        exit_code=proc.returncode,
        result=stem if has_result else None,
        **progress.snapshot()
        | (evaluator.result_counts(root / args.output, root) if has_result else {}),
    )
    return has_result


def _problem(job: Any, root: Path) -> str | None:
    """Why the Evaluator cannot run this job as it was checked when it was queued."""
    if problem := evaluator.missing_parts(root):
        return problem
    prompt_set = get_prompt_set(root, job.prompt_set)
    if prompt_set is None or prompt_set.cases is None:
        return f"The prompt set {job.prompt_set!r} is no longer there."
    return (
        evaluator.file_problem(job.prompt_set, evaluator.prompt_file(prompt_set.path))
        or evaluator.server_problem(job.backend_url)
        or evaluator.option_problem("The model", job.model)
        or evaluator.tags_problem(job.tags)
    )


def _server_problem(job: Any) -> str | None:
    # One wall-clock deadline for the whole probe, headers included (discovery/http.py): a
    # server that trickles cannot hold the job between two heartbeats.
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


def reserve_stem(job_id: int, results: Path, now: datetime | None = None) -> str:
    """run_<local time>, as the upstream menu names results; _2, _3… when that is taken.

    Both files are created here, exclusively and never through a link (a link at the name, even
    a dangling one, takes it), so the Evaluator writes into files made for this job.
    """
    base = "run_" + (now or datetime.now()).strftime("%Y%m%d_%H%M%S")
    results.mkdir(parents=True, exist_ok=True)
    folder = os.open(results, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for n in itertools.count(1):
            stem = base if n == 1 else f"{base}_{n}"
            made = _create(folder, (f"{stem}.json", f"{stem}.md"))
            if made is None:
                continue
            try:
                with transaction.atomic():
                    EvaluationJob.objects.filter(pk=job_id).update(output_stem=stem)
            except IntegrityError:
                _remove(folder, made)  # another job took this name in the same second
                continue
            return stem
    finally:
        os.close(folder)
    raise AssertionError("unreachable")


def _create(folder: int, names: tuple[str, ...]) -> list[str] | None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    made: list[str] = []
    for name in names:
        try:
            os.close(os.open(name, flags, 0o644, dir_fd=folder))
        except FileExistsError:
            _remove(folder, made)
            return None
        made.append(name)
    return made


def _remove(folder: int, names: list[str]) -> None:
    """Remove reserved files still empty (never a link, never what the Evaluator wrote)."""
    for name in names:
        with contextlib.suppress(OSError):
            st = os.lstat(name, dir_fd=folder)
            if stat.S_ISREG(st.st_mode) and st.st_size == 0:
                os.unlink(name, dir_fd=folder)


def release_stem(results: Path, stem: str) -> None:
    """A job that ended without a result gives its reserved, still empty names back."""
    try:
        folder = os.open(results, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        _remove(folder, [f"{stem}.json", f"{stem}.md"])
    finally:
        os.close(folder)


def _written(path: Path) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size > 0
