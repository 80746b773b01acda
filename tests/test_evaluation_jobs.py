"""Evaluations as background jobs, end to end: the form, real workers, the real Evaluator and a
loopback Ollama that answers /api/chat when the test lets each case through."""

from __future__ import annotations

import json
import os
import signal
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tuner_site.jobs.process import pid_alive
from tuner_site.models import EvaluationJob

from .evaluator_ws import MODEL, Worker, wait_for, write_cases
from .fake_servers import EVAL_TOOL

# The workers are other processes: what the test writes must be committed for them to see.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_user("ada", password="pw-ada-12345", is_staff=True)
    client.force_login(user)
    return user


def start_job(client, **fields) -> int:
    data = {"backend": "ollama", "model": MODEL, "prompt_set": "scored"} | fields
    response = client.post("/api/evaluations/jobs/", data)
    assert response.status_code == 201, response.content
    return response.json()["id"]


def job(pk: int) -> EvaluationJob:
    return EvaluationJob.objects.get(pk=pk)


def logs(*workers: Worker):
    return lambda: "\n".join(w.output() for w in workers)


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    # Zombies still count for killpg; the group is gone once every member has exited.
    return not pid_alive(pgid)


def test_a_job_from_the_form_runs_the_evaluator_and_its_result_appears(
    client, staff, eval_workspace, chat_ollama, workers
):
    worker = workers()
    response = client.post(
        "/evaluations/new/",
        {"backend": "ollama", "model": MODEL, "prompt_set": "scored", "temperature": "0.2"},
    )
    assert response.status_code == 302
    pk = int(response["Location"].rstrip("/").rsplit("/", 1)[1])
    assert response["Location"] == f"/evaluations/jobs/{pk}/"

    # "Running 5 evaluations..." comes before the first request, which the gate holds.
    wait_for(lambda: job(pk).total == 5, "the Evaluator to announce 5 cases", logs=logs(worker))
    assert (job(pk).status, job(pk).done) == ("running", 0)
    chat_ollama.gate.release(2)
    wait_for(lambda: job(pk).done == 2, "two cases done", logs=logs(worker))
    assert job(pk).passed == 2
    page = client.get(f"/evaluations/jobs/{pk}/").content.decode()
    assert "2 / 5 cases · 2 passed" in page
    assert 'hx-trigger="every' in page  # it keeps refreshing while it runs
    assert f"Started by</dt><dd>{staff.username}" in page

    chat_ollama.gate.release(3)
    wait_for(lambda: job(pk).status == "succeeded", "the job to succeed", logs=logs(worker))
    done = client.get(f"/api/evaluations/jobs/{pk}/").json()
    assert {k: done[k] for k in ("status", "done", "total", "passed", "error")} == {
        "status": "succeeded",
        "done": 5,
        "total": 5,
        "passed": 3,
        "error": None,
    }
    result = done["result"]
    assert result.startswith("run_") and done["exit_code"] == 2  # 2: some cases failed
    results = eval_workspace / "Evaluator" / "results"
    assert (results / f"{result}.json").is_file() and (results / f"{result}.md").is_file()
    assert any("✗ FAIL  case_03" in line for line in done["output"])

    listed = client.get("/api/evaluations/").json()["evaluations"]
    assert [(e["name"], e["model"], e["prompt_set"], e["pass_rate"]) for e in listed] == [
        (result, MODEL, "scored", 0.6)
    ]
    page = client.get(f"/evaluations/jobs/{pk}/").content.decode()
    assert f'href="/evaluations/{result}/"' in page and "hx-trigger" not in page
    assert "exit code 2: some cases failed" in page  # the Evaluator's code, told
    assert "60%" in client.get(f"/evaluations/{result}/").content.decode()
    cases = {c["case_id"]: c for c in client.get(f"/api/evaluations/{result}/").json()["cases"]}
    assert (
        cases["case_01"]["tools_called"] == [EVAL_TOOL] and cases["case_03"]["tools_called"] == []
    )
    assert cases["case_03"]["question"].startswith("Create the folder Projects/3")
    assert cases["case_03"]["response"] == "I cannot help with that."
    # The Evaluator was pointed at the configured server with the form's arguments.
    assert chat_ollama.chats == 5


def test_a_second_job_on_the_same_server_waits_for_the_first(
    client, staff, eval_workspace, chat_ollama, workers
):
    write_cases(eval_workspace, "pair", "RW")
    first_worker, second_worker = workers(), workers()
    first = start_job(client, prompt_set="pair")
    wait_for(lambda: job(first).total == 2, "the first job to start", logs=logs(first_worker))
    second = start_job(client, prompt_set="pair")

    # Some worker picks up the second job's task and leaves it queued: its server is busy.
    from django_tasks_db.models import DBTaskResult

    def looked_at() -> bool:
        return DBTaskResult.objects.filter(id=job(second).task_id, status="SUCCESSFUL").exists()

    wait_for(
        looked_at, "a worker to look at the second job", logs=logs(first_worker, second_worker)
    )
    assert job(second).status == "queued"
    page = client.get(f"/evaluations/jobs/{second}/").content.decode()
    assert f'Waiting for <a href="/evaluations/jobs/{first}/">job {first}</a> on ollama' in page

    chat_ollama.gate.release(4)
    everyone = logs(first_worker, second_worker)
    wait_for(lambda: job(second).status == "succeeded", "the second job", 60, everyone)
    a, b = job(first), job(second)
    assert a.status == "succeeded" and b.started_at >= a.finished_at
    assert (a.passed, b.passed) == (1, 1) and a.result != b.result


def test_cancel_stops_the_evaluators_process_group(client, staff, chat_ollama, workers):
    worker = workers()
    pk = start_job(client)
    chat_ollama.gate.release(1)
    wait_for(lambda: job(pk).done == 1, "the first case", logs=logs(worker))
    pgid = job(pk).evaluator_pid
    assert pgid and not group_gone(pgid)

    # This process serves the cancel; the worker, another process, sees the flag and stops it.
    response = client.post(f"/api/evaluations/jobs/{pk}/cancel/")
    assert response.status_code == 200 and response.json()["cancel_requested"] is True
    wait_for(lambda: job(pk).status == "cancelled", "the job to be cancelled", logs=logs(worker))
    assert group_gone(pgid)
    ended = job(pk)
    assert ended.result is None and ended.error == ""
    assert "✓ PASS  case_01" in ended.output  # what it printed is kept
    response = client.post(f"/api/evaluations/jobs/{pk}/cancel/")
    assert response.status_code == 409 and "already ended (cancelled)" in response.json()["error"]

    # The worker goes on with the next job (answered at once: the cancelled Evaluator's
    # abandoned request still waits at the gate).
    chat_ollama.gate = None
    after = start_job(client)
    wait_for(lambda: job(after).status == "succeeded", "the next job", logs=logs(worker))


def test_a_queued_job_that_is_cancelled_never_runs(client, staff, chat_ollama, workers):
    pk = start_job(client)
    response = client.post(f"/evaluations/jobs/{pk}/cancel/")
    assert response.status_code == 302 and job(pk).status == "cancelled"
    worker = workers("--batch")
    assert worker.proc.wait(60) == 0, worker.output()
    assert job(pk).status == "cancelled" and chat_ollama.chats == 0


def test_a_killed_workers_job_is_failed_when_the_next_worker_starts(
    client, staff, chat_ollama, workers
):
    first = workers()
    pk = start_job(client)
    chat_ollama.gate.release(1)
    wait_for(lambda: job(pk).done == 1, "the first case", logs=logs(first))
    evaluator = job(pk).evaluator_pid
    first.kill()
    # The Evaluator has its own session: it outlives its worker, and the job looks running.
    assert pid_alive(evaluator) and job(pk).status == "running"

    second = workers()
    wait_for(lambda: job(pk).status == "failed", "the lost job to fail", logs=logs(second))
    lost = job(pk)
    assert f"Its worker (pid {first.proc.pid} on " in lost.error and "stopped" in lost.error
    assert "✓ PASS  case_01" in lost.output
    wait_for(lambda: group_gone(evaluator), "the orphaned Evaluator to be stopped")
    wait_for(lambda: f"Evaluation job {pk} marked as lost" in second.output(), "its report")
    from django_tasks_db.models import DBTaskResult

    assert DBTaskResult.objects.get(id=lost.task_id).status == "FAILED"
    shown = client.get(f"/api/evaluations/jobs/{pk}/").json()
    assert shown["status"] == "failed" and shown["error"] == lost.error


def test_a_server_that_is_down_fails_the_job_in_one_line(client, staff, chat_ollama, workers):
    pk = start_job(client)
    chat_ollama.stop()
    worker = workers("--batch")
    worker.proc.wait(60)
    failed = job(pk)
    assert failed.status == "failed", worker.output()
    assert failed.error.startswith(f"Ollama is not running at 127.0.0.1:{chat_ollama.port}.")
    assert "\n" not in failed.error and failed.result is None


def test_request_errors_fail_the_job_and_keep_the_evaluators_output(
    client, staff, chat_ollama, workers
):
    chat_ollama.gate = None
    chat_ollama.chat_status = 404  # the model went away after the job was queued
    pk = start_job(client, limit="1")
    worker = workers("--batch")
    worker.proc.wait(60)
    failed = job(pk)
    assert failed.status == "failed" and failed.exit_code == 3, worker.output()
    assert failed.error.startswith("1 of 1 cases got no answer from the server (is it up,")
    assert "404 Client Error" in failed.error
    assert "✗ FAIL  case_01" in failed.output
    assert failed.result is not None  # the Evaluator wrote its result; the job links it


def test_an_evaluator_that_cannot_start_says_why(client, staff, chat_ollama, workers, tmp_path):
    fake = tmp_path / "python-without-requests"
    fake.write_text(
        "#!/bin/sh\necho 'Traceback (most recent call last):'\n"
        "echo \"ModuleNotFoundError: No module named 'requests'\"\nexit 1\n"
    )
    fake.chmod(0o755)
    pk = start_job(client)
    worker = workers("--batch", env={"TUNER_EVALUATOR_PYTHON": str(fake)})
    worker.proc.wait(60)
    failed = job(pk)
    assert failed.status == "failed", worker.output()
    assert failed.error == (
        "The Evaluator exited with code 1: ModuleNotFoundError: No module named 'requests'. "
        "The Evaluator's Python needs `requests`: pip install requests"
    )
    assert failed.output.splitlines()[0] == "Traceback (most recent call last):"


def test_a_prompt_set_removed_after_queueing_fails_the_job(
    client, staff, eval_workspace, chat_ollama, workers
):
    pk = start_job(client)
    (eval_workspace / "Evaluator" / "prompts" / "scored.json").unlink()
    workers("--batch").proc.wait(60)
    assert job(pk).status == "failed"
    assert job(pk).error == "The prompt set 'scored' is no longer there."


def test_scripts_start_follow_and_read_a_job_as_json(
    client, staff, eval_workspace, chat_ollama, workers
):
    worker = workers()
    response = client.post(
        "/api/evaluations/jobs/",
        json.dumps(
            {
                "backend": "ollama",
                "model": MODEL,
                "prompt_set": "scored",
                "tags": ["folder"],
                "limit": 2,
                "temperature": 0,
                "seed": 7,
            }
        ),
        content_type="application/json",
    )
    assert response.status_code == 201
    created = response.json()
    assert response["Location"] == f"/api/evaluations/jobs/{created['id']}/"
    assert created["status"] in ("queued", "running")
    assert (created["tags"], created["limit"], created["temperature"], created["seed"]) == (
        ["folder"],
        2,
        0.0,
        7,
    )
    chat_ollama.gate.release(2)
    pk = created["id"]
    wait_for(lambda: job(pk).status == "succeeded", "the job", logs=logs(worker))
    # Cases 1, 3 and 5 have the tag; the limit keeps 1 (answered right) and 3 (wrong).
    data = client.get(f"/api/evaluations/jobs/{pk}/").json()
    assert (data["done"], data["total"], data["passed"]) == (2, 2, 1)
    assert [j["id"] for j in client.get("/api/evaluations/jobs/").json()["jobs"]] == [pk]
    result = client.get(f"/api/evaluations/{data['result']}/").json()
    assert result["pass_rate"] == 0.5
    assert [c["case_id"] for c in result["cases"]] == ["case_01", "case_03"]
    # The Evaluator got the form's arguments and the configured server's address.
    written = eval_workspace / "Evaluator" / "results" / f"{data['result']}.json"
    meta = json.loads(written.read_text())["metadata"]
    assert (meta["host"], meta["port"], meta["model"]) == ("127.0.0.1", chat_ollama.port, MODEL)
    assert (meta["temperature"], meta["seed"], meta["limit"]) == (0.0, 7, 2)
    assert meta["tags_filter"] == ["folder"]


def test_these_tests_commit_what_they_write_for_the_workers_to_see(staff):
    # `staff` reaches the database through django_user_model; the marker conftest adds for
    # such fixtures must not replace this module's transaction=True.
    from django.db import connection

    assert not connection.in_atomic_block


def test_a_task_queued_under_the_old_dotted_path_still_runs(client, staff, chat_ollama, workers):
    # Rows django-tasks stored before the jobs package name the task by its old module.
    from django_tasks_db.models import DBTaskResult

    chat_ollama.gate = None
    pk = start_job(client, limit="1")
    row = DBTaskResult.objects.get(id=job(pk).task_id)
    assert row.task_path == "tuner_site.jobs.evaluation.run_evaluation"
    DBTaskResult.objects.filter(id=row.id).update(
        task_path="tuner_site.evaluation_jobs.run_evaluation"
    )
    worker = workers("--batch")
    assert worker.proc.wait(60) == 0, worker.output()
    assert job(pk).status == "succeeded", worker.output()
    assert DBTaskResult.objects.get(id=row.id).status == "SUCCESSFUL"


# A SIGTERM (a service manager), and Ctrl-C under `make run`: the terminal's SIGINT and the
# Makefile trap's SIGTERM.
@pytest.mark.parametrize("signals", [("SIGTERM",), ("SIGINT", "SIGTERM")])
def test_a_worker_stopped_by_signals_puts_its_job_back_and_the_next_one_finishes_it(
    client, staff, eval_workspace, chat_ollama, workers, signals
):
    first = workers()
    pk = start_job(client)
    chat_ollama.gate.release(1)
    wait_for(lambda: job(pk).done == 1, "the first case", logs=logs(first))
    evaluator = job(pk).evaluator_pid
    for name in signals:
        first.proc.send_signal(getattr(signal, name))
    assert first.proc.wait(30) == 0, first.output()
    assert group_gone(evaluator)
    back = job(pk)
    assert back.status == "queued", first.output()
    assert (back.done, back.total, back.output_stem, back.worker_pid) == (0, None, None, None)
    assert back.error.endswith(
        "while it ran (1 of 5 cases done); it starts again from the beginning when a worker runs."
    )
    said = first.output()
    assert "Traceback" not in said
    # One line says what happened, and it is the last: no "SUCCESSFUL" task or "Received
    # Interrupt" under it to contradict it.
    told = said.splitlines()[-1]
    assert told.endswith(
        f"Stopped: job {pk} is back in the queue and starts again from the beginning when a "
        "worker runs."
    ), said
    assert said.count("Stopped") == 1 and "Received" not in said
    # The names reserved for its result are given back (the Evaluator had not written them).
    assert list((eval_workspace / "Evaluator" / "results").iterdir()) == []
    page = client.get(f"/evaluations/jobs/{pk}/").content.decode()
    assert "starts again from the beginning" in page and "Waiting for a worker" in page

    chat_ollama.gate = None  # the stopped Evaluator's request still waits at the old gate
    second = workers()
    wait_for(lambda: job(pk).status == "succeeded", "the job to finish", 60, logs(second))
    done = job(pk)
    assert (done.done, done.total, done.passed, done.error) == (5, 5, 3, "")
    assert done.worker_pid == second.proc.pid and done.result


def fake_python(tmp_path, name: str, code: str):
    """An Evaluator's Python that runs `code` whatever it is asked: a misbehaving Evaluator."""
    script = tmp_path / name
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -c "{code}"\n')
    script.chmod(0o755)
    return str(script)


def test_a_job_past_its_time_limit_is_stopped_and_failed(client, staff, chat_ollama, workers):
    # A server that never answers: the Evaluator would wait its 60 s request three times a case.
    limit = {"TUNER_EVAL_BASE_SECONDS": "2", "TUNER_EVAL_SECONDS_PER_CASE": "0"}
    worker = workers(env=limit)
    pk = start_job(client)
    wait_for(lambda: job(pk).status == "failed", "the time limit", 60, logs(worker))
    failed = job(pk)
    assert failed.error == (
        "It passed its time limit of 2s (2s, and 0s for each of its 5 cases) with 0 of 5 cases "
        "done, and was stopped."
    )
    assert failed.evaluator_pid and group_gone(failed.evaluator_pid) and failed.result is None


def test_an_evaluator_past_its_memory_limit_fails_saying_so(
    client, staff, chat_ollama, workers, tmp_path
):
    python = fake_python(tmp_path, "greedy", "bytearray(400 << 20)")
    pk = start_job(client)
    worker = workers(
        "--batch", env={"TUNER_EVALUATOR_PYTHON": python, "TUNER_EVAL_MEMORY_MB": "200"}
    )
    worker.proc.wait(60)
    failed = job(pk)
    assert failed.status == "failed", worker.output()
    assert failed.error == (
        "The Evaluator passed its memory limit of 200 MB (TUNER_EVAL_MEMORY_MB) and stopped."
    )
    assert "MemoryError" in failed.output


def test_an_evaluator_writing_past_the_file_cap_fails_saying_so(
    client, staff, eval_workspace, chat_ollama, workers, tmp_path
):
    python = fake_python(
        tmp_path, "verbose", "open('Evaluator/results/huge.json', 'wb').write(bytes(3 << 20))"
    )
    pk = start_job(client)
    worker = workers("--batch", env={"TUNER_EVALUATOR_PYTHON": python, "TUNER_EVAL_RESULT_MB": "1"})
    worker.proc.wait(60)
    failed = job(pk)
    assert failed.status == "failed", worker.output()
    assert failed.error.startswith("The Evaluator's result passed the 1 MB cap on a file it writes")
    assert (eval_workspace / "Evaluator" / "results" / "huge.json").stat().st_size == 1 << 20


def test_a_worker_outlives_a_database_locked_longer_than_its_timeout(
    client, staff, chat_ollama, workers
):
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("a file lock held by another program is SQLite's")
    from .test_database_faults import Lock

    worker = workers()
    wait_for(lambda: "Starting worker" in worker.output(), "the worker to start polling")
    connection.close()
    # A backup tool or a VACUUM holding the write lock past SQLite's 5 s timeout.
    lock = Lock(Path(connection.settings_dict["NAME"]), "IMMEDIATE")
    try:
        wait_for(
            lambda: "The database is locked" in worker.output(), "the worker to meet the lock", 20
        )
    finally:
        lock.release()
    assert worker.proc.poll() is None, worker.output()
    chat_ollama.gate = None
    pk = start_job(client, limit="1")
    wait_for(lambda: job(pk).status == "succeeded", "the next job", 60, logs(worker))
    said = worker.output()
    assert "Traceback" not in said
    assert "another program is writing to it: a backup, VACUUM or a large delete?" in said


def test_a_link_planted_at_the_next_result_names_is_never_written_through(
    client, staff, eval_workspace, chat_ollama, workers, tmp_path
):
    outside = tmp_path / "outside"
    outside.mkdir()
    results = eval_workspace / "Evaluator" / "results"
    results.mkdir(parents=True, exist_ok=True)
    now = datetime.now()
    for s in range(-2, 60):  # every name the next minute's jobs would take first
        stem = (now + timedelta(seconds=s)).strftime("run_%Y%m%d_%H%M%S")
        for suffix in (".json", ".md"):
            (results / f"{stem}{suffix}").symlink_to(outside / f"{stem}{suffix}")
    chat_ollama.gate = None
    pk = start_job(client, limit="1")
    worker = workers("--batch")
    worker.proc.wait(60)
    done = job(pk)
    assert done.status == "succeeded", worker.output()
    assert done.result.endswith("_2") and (results / f"{done.result}.json").stat().st_size > 0
    assert list(outside.iterdir()) == []


def test_the_pre_start_check_of_a_trickling_server_ends_within_its_deadline(
    client, staff, chat_ollama, workers
):
    pk = start_job(client)
    chat_ollama.mode = "trickle"  # its headers a byte at a time, for ever
    worker = workers("--batch")
    worker.proc.wait(60)
    failed = job(pk)
    assert failed.status == "failed", worker.output()
    # One 1.5 s deadline for the whole check (claimed to ended), well inside a heartbeat.
    assert (failed.finished_at - failed.started_at).total_seconds() < 5
    assert "\n" not in failed.error and failed.evaluator_pid is None


def test_a_verdict_is_written_through_a_database_locked_past_its_timeout():
    import threading

    from django.db import connection

    from tuner_site.jobs.lifecycle import claim, finish

    if connection.vendor != "sqlite":
        pytest.skip("a file lock held by another program is SQLite's")
    from .test_database_faults import Lock

    pending = EvaluationJob.objects.create(
        backend="ollama", backend_kind="ollama", backend_url="http://127.0.0.1:9", model="m"
    )
    mine = claim(EvaluationJob, pending.pk, "t1")
    connection.close()
    lock = Lock(Path(connection.settings_dict["NAME"]), "IMMEDIATE")
    threading.Timer(7, lock.release).start()  # past SQLite's 5 s timeout
    assert finish(mine, "succeeded") == "succeeded"
    assert job(pending.pk).status == "succeeded"
