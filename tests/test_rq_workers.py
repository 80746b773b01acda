"""Workers on other machines (README), as a team runs them: jobs sent through django-tasks-rq
to a real Redis and run by two `manage.py rqworker` processes on the test database, with the
real Evaluator and loopback servers. Skipped where `redis-server` is not installed."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django_tasks import TaskResultStatus

from tuner_site.jobs.evaluation import run_evaluation
from tuner_site.models import EvaluationJob
from tuner_site.settings import rq_queues

from . import test_sweeps as sweeps
from .evaluator_ws import Worker, wait_for, write_cases
from .test_evaluation_jobs import group_gone, job, logs, start_job

# The workers are other processes: what the test writes must be committed for them to see.
pytestmark = pytest.mark.django_db(transaction=True)

# The sweep tests' run, servers and helpers (tests/test_sweeps.py), shared rather than copied.
staff, run_dir, ollama = sweeps.staff, sweeps.run_dir, sweeps.ollama

NO_RQ = (
    "needs redis-server (Debian: apt-get install redis-server) and django-tasks-rq "
    "(make install) (README: Development)"
)
RQ_BACKEND = "django_tasks_rq.RQBackend"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """A Redis of this test process's own, on a free loopback port, its files in a temp dir."""
    server = shutil.which("redis-server")
    if server is None or importlib.util.find_spec("django_tasks_rq") is None:
        # CI installs both: there a missing one is a failure, not a skip.
        if os.environ.get("TUNER_REQUIRE_REDIS"):
            pytest.fail(NO_RQ)
        pytest.skip(NO_RQ)
    import redis

    folder = tmp_path_factory.mktemp("redis")
    for _ in range(5):  # another process may take the free port before Redis binds it
        port = free_port()
        proc = subprocess.Popen(
            [server, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder)]
            + ["--save", "", "--appendonly", "no", "--logfile", str(folder / "redis.log")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.02)
        if proc.poll() is None:
            break
    else:
        raise AssertionError("redis-server did not start:\n" + (folder / "redis.log").read_text())
    yield f"redis://127.0.0.1:{port}/0"
    client.close()
    proc.terminate()
    proc.wait(10)


class RQWorker(Worker):
    """`manage.py rqworker` as the README starts it."""

    def command(self) -> list[str]:
        rq = ["rqworker", "--job-class", "django_tasks_rq.Job", "default"]
        return [sys.executable, "manage.py", *rq]

    def horse(self) -> int | None:
        """The work horse that runs this worker's job now (RQ forks one per job)."""
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        found = children.read_text().split() if children.exists() else []
        return int(found[0]) if found else None


@pytest.fixture
def rq_workers(settings, redis_url, eval_workspace: Path, tmp_path: Path):
    """Jobs go through Redis; `rq_workers()` starts a worker, each stopped after the test."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    settings.TASKS = {"default": {"BACKEND": RQ_BACKEND}}
    settings.RQ_QUEUES = rq_queues(redis_url)
    env = {
        "TUNER_TASKS_BACKEND": RQ_BACKEND,
        "TUNER_TASKS_APPS": "django_rq,django_tasks_rq",
        "TUNER_RQ_URL": redis_url,
    }
    started: list[RQWorker] = []

    def start() -> RQWorker:
        worker = RQWorker(eval_workspace, tmp_path / "worker-data", env)
        started.append(worker)
        worker.start()
        return worker

    start.started = started  # type: ignore[attr-defined]
    yield start
    # All told at once: each takes a second to leave Redis's pubsub.
    for worker in started:
        if worker.proc is not None and worker.proc.poll() is None:
            worker.proc.send_signal(signal.SIGTERM)
    for worker in started:
        worker.stop()


def looked_at(pk: int) -> bool:
    """A worker took the job's task and left it queued (its server was busy)."""
    result = run_evaluation.get_result(job(pk).task_id)
    return result.status == TaskResultStatus.SUCCESSFUL and result.return_value.startswith(
        "not started"
    )


def test_a_job_runs_through_an_rqworker_with_no_time_limit_but_its_own(
    client, staff, chat_ollama, rq_workers
):
    workers = rq_workers(), rq_workers()
    pk = start_job(client)
    task = run_evaluation.get_result(job(pk).task_id)
    assert task.backend == "default" and type(task.task.get_backend()).__name__ == "RQBackend"
    chat_ollama.gate.release(2)
    wait_for(lambda: job(pk).done == 2, "two cases", logs=logs(*workers))
    # Told to stop, its worker lets the job finish first (RQ's warm shutdown), then exits.
    (busy,) = [w for w in workers if w.horse() == job(pk).worker_pid]
    busy.proc.send_signal(signal.SIGTERM)
    chat_ollama.gate.release(3)
    wait_for(lambda: job(pk).status == "succeeded", "the job", 60, logs(*workers))
    assert busy.proc.wait(30) == 0
    done = client.get(f"/api/evaluations/jobs/{pk}/").json()
    assert (done["done"], done["total"], done["passed"]) == (5, 5, 3)
    listed = client.get("/api/evaluations/").json()["evaluations"]
    assert [(e["name"], e["pass_rate"]) for e in listed] == [(done["result"], 0.6)]
    # RQ kills a job after 180 s by default; an evaluation may rightly take hours.
    import django_rq
    from django_tasks_rq.backend import Job as RQJob

    assert RQJob.fetch(job(pk).task_id, connection=django_rq.get_connection()).timeout == -1
    assert run_evaluation.get_result(job(pk).task_id).status == TaskResultStatus.SUCCESSFUL


def test_one_server_runs_one_job_at_a_time_across_two_rqworkers(
    client, staff, eval_workspace, chat_ollama, rq_workers
):
    write_cases(eval_workspace, "pair", "RW")
    workers = rq_workers(), rq_workers()
    everyone = logs(*workers)
    # Queued at once: each worker takes one task.
    first, second = start_job(client, prompt_set="pair"), start_job(client, prompt_set="pair")
    running_at_once = 0

    def watch(check):
        def watched() -> object:
            nonlocal running_at_once
            running = EvaluationJob.objects.filter(backend="ollama", status="running").count()
            running_at_once = max(running_at_once, running)
            return check()

        return watched

    wait_for(watch(lambda: job(first).total == 2), "the first job to start", logs=everyone)
    wait_for(watch(lambda: looked_at(second)), "the other worker to take the second", 30, everyone)
    assert job(second).status == "queued"
    page = client.get(f"/evaluations/jobs/{second}/").content.decode()
    assert f'Waiting for <a href="/evaluations/jobs/{first}/">job {first}</a> on ollama' in page

    chat_ollama.gate.release(4)
    wait_for(watch(lambda: job(second).status == "succeeded"), "the second job", 60, everyone)
    a, b = job(first), job(second)
    assert a.status == "succeeded" and b.started_at >= a.finished_at
    assert running_at_once == 1
    assert {a.worker_pid, b.worker_pid}.isdisjoint({w.proc.pid for w in workers})  # horses


def test_a_sweep_runs_through_two_rqworkers_and_leaves_no_model(
    client, staff, run_dir, ollama, rq_workers
):
    sweeps.strengths(ollama, run_dir)
    made = sweeps.start(client, checkpoints=["checkpoint-100", "checkpoint-200"])
    everyone = logs(rq_workers(), rq_workers())
    wait_for(
        lambda: sweeps.sweep(client, made["id"])["status"] == "succeeded",
        "the sweep to finish",
        90,
        everyone,
    )
    wait_for(
        lambda: (
            {c["served"] for c in sweeps.sweep(client, made["id"])["checkpoints"]} == {"removed"}
        ),
        "every model to be removed",
        logs=everyone,
    )
    done = sweeps.sweep(client, made["id"])
    assert sweeps.rows(done) == {
        "checkpoint-100": ("done", 1, 4),
        "checkpoint-200": ("done", 4, 4),
    }
    creates = [r[2]["model"] for r in ollama.requests if r[1] == "/api/create"]
    assert creates == [f"tuner-{sweeps.RUN}-ckpt100:latest", f"tuner-{sweeps.RUN}-ckpt200:latest"]
    assert not ollama.created


def test_a_killed_work_horse_fails_its_checkpoint_and_the_sweep_goes_on(
    client, staff, run_dir, ollama, rq_workers
):
    sweeps.strengths(ollama, run_dir)
    ollama.gate = threading.Semaphore(0)
    made = sweeps.start(client, checkpoints=["checkpoint-200", "checkpoint-300"])
    workers = rq_workers(), rq_workers()
    everyone = logs(*workers)
    ollama.gate.release(1)
    first = EvaluationJob.objects.get(sweep_id=made["id"], checkpoint="checkpoint-200")
    wait_for(lambda: job(first.pk).done == 1, "the first case", logs=everyone)
    running = job(first.pk)
    horse, evaluator = running.worker_pid, running.evaluator_pid
    assert horse in {w.horse() for w in workers}
    os.kill(horse, signal.SIGKILL)  # as the OOM killer would: no clean-up of its own

    # Its worker sees its horse die and fails the job at once; no page has to look.
    wait_for(lambda: job(first.pk).status == "failed", "the lost job to fail", 30, everyone)
    lost = job(first.pk)
    assert f"Its worker (pid {horse} on {socket.gethostname()}) stopped" in lost.error
    assert "✓ PASS  case_1" in lost.output  # what it had done is kept
    wait_for(lambda: group_gone(evaluator), "the orphaned Evaluator to be stopped")
    assert all(w.proc.poll() is None for w in workers)
    # Its model is removed, and the next checkpoint runs on a worker.
    ollama.gate.release(10)
    wait_for(
        lambda: sweeps.rows(sweeps.sweep(client, made["id"]))["checkpoint-300"][0] == "done",
        "the next checkpoint",
        60,
        everyone,
    )
    rows = sweeps.rows(sweeps.sweep(client, made["id"]))
    assert rows == {"checkpoint-200": ("failed", 1, 4), "checkpoint-300": ("done", 2, 4)}
    wait_for(lambda: not ollama.created, "its model to be removed", logs=everyone)


def test_an_rqworker_that_starts_fails_the_job_a_killed_one_left_running(
    client, staff, chat_ollama, rq_workers
):
    dead = rq_workers()
    pk = start_job(client)
    waiting = start_job(client)
    chat_ollama.gate.release(1)
    wait_for(lambda: job(pk).done == 1, "the first case", logs=logs(dead))
    horse = job(pk).worker_pid
    # The machine goes down: the worker, then its horse (which would outlive it) die.
    dead.kill()
    os.kill(horse, signal.SIGKILL)
    assert job(pk).status == "running" and job(waiting).status == "queued"

    fresh = rq_workers()
    wait_for(lambda: job(pk).status == "failed", "the lost job to fail", 30, logs(fresh))
    assert f"Its worker (pid {horse} on " in job(pk).error
    wait_for(lambda: f"Evaluation job {pk} marked as lost" in fresh.output(), "its report")
    # Its Evaluator, stopped, had one request waiting at the gate.
    chat_ollama.gate.release(6)
    wait_for(lambda: job(waiting).status == "succeeded", "the next job", 60, logs(fresh))
