"""The rules jobs follow in the database: one per server, first come first served, names that
never collide, and jobs whose worker is gone never left running."""

from __future__ import annotations

import re
import socket
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from tuner_site.jobs.evaluation import release_stem, reserve_stem
from tuner_site.jobs.lifecycle import cancel, claim, fail_lost_jobs
from tuner_site.models import EvaluationJob

pytestmark = pytest.mark.django_db


def make(backend: str = "ollama", **fields) -> EvaluationJob:
    return EvaluationJob.objects.create(
        backend=backend,
        backend_kind="ollama",
        backend_url="http://127.0.0.1:9",
        model="m:q8",
        prompt_set="scored",
        **fields,
    )


def tasks_for(job: EvaluationJob) -> int:
    return sum(r.args_kwargs["args"] == [job.pk] for r in DBTaskResult.objects.all())


def test_a_server_runs_one_job_at_a_time_in_the_order_they_came():
    first, second, third = make(), make(), make()
    other = make("lmstudio")
    assert claim(EvaluationJob, second.pk, "t2") is None  # the first came first
    assert claim(EvaluationJob, first.pk, "t1").status == "running"
    assert claim(EvaluationJob, second.pk, "t2") is None  # its server is busy
    assert claim(EvaluationJob, other.pk, "t4").status == "running"  # another server is not
    assert (
        claim(EvaluationJob, first.pk, "t1-again") is None
    )  # a duplicate task does not run it twice
    EvaluationJob.objects.filter(pk=first.pk).update(status="succeeded")
    claimed = claim(EvaluationJob, second.pk, "t2")
    assert claimed.task_id == "t2" and claimed.worker_host == socket.gethostname()
    assert EvaluationJob.objects.get(pk=third.pk).status == "queued"


def test_the_database_refuses_two_running_jobs_on_one_server():
    make(status="running")
    with pytest.raises(IntegrityError), transaction.atomic():
        make(status="running")
    make("lmstudio", status="running")
    make(status="succeeded")


def test_result_names_never_collide_with_files_or_other_jobs(tmp_path):
    now = datetime(2025, 12, 1, 16, 30, 5)
    (tmp_path / "run_20251201_163005.json").write_text("{}")
    first, second, third = make(), make(), make()
    assert reserve_stem(first.pk, tmp_path, now) == "run_20251201_163005_2"
    assert reserve_stem(second.pk, tmp_path, now) == "run_20251201_163005_3"  # same second
    (tmp_path / "run_20251201_163005_4.md").write_text("")
    assert reserve_stem(third.pk, tmp_path, now) == "run_20251201_163005_5"
    later = now + timedelta(seconds=1)
    assert reserve_stem(make().pk, tmp_path, later) == "run_20251201_163006"


def running(host: str, pid: int, heartbeat_age: float, **fields) -> EvaluationJob:
    beat = timezone.now() - timedelta(seconds=heartbeat_age)
    return make(
        status="running",
        worker_host=host,
        worker_pid=pid,
        heartbeat_at=beat,
        started_at=beat,
        **fields,
    )


def test_a_job_whose_worker_elsewhere_went_silent_is_failed_when_a_page_looks(client):
    silent = running("gpu-box", 4242, heartbeat_age=120)
    waiting = make()
    data = client.get(f"/api/evaluations/jobs/{silent.pk}/").json()
    assert data["status"] == "failed"
    assert data["error"].startswith("Its worker (pid 4242 on gpu-box) stopped reporting at ")
    assert tasks_for(waiting) == 1  # its server was handed to the next job


def test_a_job_whose_worker_reports_stays_running(client):
    busy = running("gpu-box", 4242, heartbeat_age=5)
    assert client.get(f"/api/evaluations/jobs/{busy.pk}/").json()["status"] == "running"
    assert fail_lost_jobs() == []


def test_a_job_whose_worker_on_this_machine_is_gone_is_failed_at_once(client):
    # A pid no process can have (a dead child's could be given to another process meanwhile).
    pid_max = Path("/proc/sys/kernel/pid_max")
    gone = (int(pid_max.read_text()) if pid_max.is_file() else 4_194_304) + 1
    job = running(socket.gethostname(), gone, heartbeat_age=1, cancel_requested=False)
    page = client.get("/evaluations/jobs/").content.decode()
    assert EvaluationJob.objects.get(pk=job.pk).status == "failed"
    assert f"Its worker (pid {gone} on {socket.gethostname()}) stopped" in page


def test_a_lost_job_that_was_being_cancelled_ends_cancelled():
    job = running("gpu-box", 4242, heartbeat_age=120, cancel_requested=True)
    assert [j.pk for j in fail_lost_jobs()] == [job.pk]
    assert EvaluationJob.objects.get(pk=job.pk).status == "cancelled"


def test_cancelling_a_queued_job_hands_its_turn_to_the_next():
    first, second = make(), make()
    assert cancel(first) is True
    assert EvaluationJob.objects.get(pk=first.pk).status == "cancelled"
    assert tasks_for(second) == 1
    busy = make("lmstudio", status="running")
    assert cancel(busy) is True
    busy.refresh_from_db()
    assert busy.cancel_requested is True and busy.status == "running"
    busy.status = "succeeded"
    busy.save()
    assert cancel(busy) is False  # it had ended: nothing to cancel


def test_admin_lists_jobs_read_only(admin_client):
    job = make(status="failed", error="Ollama is not running at 127.0.0.1:9.")
    page = admin_client.get("/admin/tuner_site/evaluationjob/").content.decode()
    # The row's own status cell (the status filter beside the list names every status).
    assert "m:q8" in page and '<td class="field-status">Failed</td>' in page
    assert admin_client.get(f"/admin/tuner_site/evaluationjob/{job.pk}/change/").status_code == 200
    assert admin_client.get("/admin/tuner_site/evaluationjob/add/").status_code == 403


def test_job_statuses_are_written_only_through_the_models_choices():
    # Compared or written as literals, a status drifts from the one list of them (issue 21).
    literal = re.compile(
        r"""(?:[=(]|return)\s*["'](queued|running|succeeded|failed|cancelled)["']"""
    )
    repo = Path(__file__).resolve().parents[1]
    files = [
        *(repo / "tuner_site" / "jobs").glob("*.py"),
        repo / "tuner_site" / "views" / "jobs.py",
        repo / "tuner_site" / "management" / "commands" / "db_worker.py",
        *(repo / "templates" / "evaluations").glob("*job*.html"),
    ]
    found = [
        f"{path.relative_to(repo)}:{n}: {line.strip()}"
        for path in files
        if path.name != "models.py"  # where the choices are
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if literal.search(line)
    ]
    assert found == []


def test_a_failed_or_cancelled_job_runs_again_with_the_same_arguments(
    client, django_user_model, use_workspace, settings
):
    # The server moved since (restarted on another port): the job runs again where it is now.
    settings.OLLAMA_HOST = "127.0.0.1:19"
    ada = django_user_model.objects.create_user("ada", password="pw-ada-12345", is_staff=True)
    old = make(status="failed", tags=["create"], limit=3, temperature=0.0, seed=7, done=2, total=3)
    old.error, old.output = "Its worker was stopped.", "✓ PASS  case_01"
    old.save()
    assert client.post(f"/evaluations/jobs/{old.pk}/again/").status_code == 401  # signed out
    client.force_login(ada)
    page = client.get(f"/evaluations/jobs/{old.pk}/").content.decode()
    assert f'action="/evaluations/jobs/{old.pk}/again/"' in page and ">Run again</button>" in page

    response = client.post(f"/evaluations/jobs/{old.pk}/again/")
    again = EvaluationJob.objects.exclude(pk=old.pk).get()
    assert response.status_code == 302 and response["Location"] == f"/evaluations/jobs/{again.pk}/"
    same = ("backend", "model", "prompt_set", "tags", "limit", "temperature", "seed")
    assert all(getattr(again, f) == getattr(old, f) for f in same)
    assert (old.backend_url, again.backend_url) == ("http://127.0.0.1:9", "http://127.0.0.1:19")
    assert (again.status, again.done, again.total, again.error, again.output) == (
        "queued",
        0,
        None,
        "",
        "",
    )
    assert again.created_by == ada and tasks_for(again) == 1

    api = client.post(f"/api/evaluations/jobs/{old.pk}/again/")
    assert api.status_code == 201 and api.json()["status"] == "queued"
    assert api["Location"] == f"/api/evaluations/jobs/{api.json()['id']}/"
    # A queued, running or finished job is not run again, and says why.
    refused = client.post(f"/api/evaluations/jobs/{again.pk}/again/")
    assert (
        refused.status_code == 409 and "only a failed or cancelled job" in refused.json()["error"]
    )
    page = client.get(f"/evaluations/jobs/{again.pk}/").content.decode()
    assert "Run again" not in page
    # A server no longer configured is said, and nothing is queued.
    gone = make(backend="lab-vllm", status="failed")
    refused = client.post(f"/api/evaluations/jobs/{gone.pk}/again/")
    assert refused.status_code == 409 and "'lab-vllm'" in refused.json()["error"]
    assert "no longer configured" in refused.json()["error"]
    assert not EvaluationJob.objects.filter(backend="lab-vllm", status="queued").exists()


def test_a_non_staff_user_cannot_run_a_job_again(client, django_user_model, use_workspace):
    old = make(status="cancelled")
    client.force_login(django_user_model.objects.create_user("bob", password="pw-bob-12345"))
    assert client.post(f"/api/evaluations/jobs/{old.pk}/again/").status_code == 403
    assert "Run again" not in client.get(f"/evaluations/jobs/{old.pk}/").content.decode()
    assert EvaluationJob.objects.count() == 1


def test_a_dangling_link_at_a_result_name_is_taken_and_never_written_through(tmp_path):
    results, outside = tmp_path / "results", tmp_path / "outside"
    results.mkdir()
    outside.mkdir()
    now = datetime(2025, 12, 1, 16, 30, 5)
    (results / "run_20251201_163005.json").symlink_to(outside / "planted.json")  # dangling
    (results / "run_20251201_163005_2.md").symlink_to(outside / "planted.md")
    stem = reserve_stem(make().pk, results, now)
    assert stem == "run_20251201_163005_3"
    for suffix in (".json", ".md"):
        made = results / f"{stem}{suffix}"
        assert not made.is_symlink() and made.is_file() and made.stat().st_size == 0
    assert list(outside.iterdir()) == []  # nothing was created through a link
    assert not (results / "run_20251201_163005_2.json").exists()  # its half was given back

    # A job that ends without a result gives back its empty names, and only those.
    release_stem(results, stem)
    assert not (results / f"{stem}.json").exists() and not (results / f"{stem}.md").exists()
    kept = reserve_stem(make().pk, results, now)
    (results / f"{kept}.json").write_text("{}")  # what the Evaluator wrote stays
    release_stem(results, kept)
    assert (results / f"{kept}.json").read_text() == "{}"
    release_stem(results, "run_20251201_163005")  # a link is never removed either
    assert (results / "run_20251201_163005.json").is_symlink()


def test_a_cancel_that_got_in_before_the_verdict_wins_it(client, django_user_model):
    from tuner_site.jobs.lifecycle import finish

    running = claim(EvaluationJob, make().pk, "t1")
    assert cancel(running) is True  # the API answers 200: the job will end cancelled
    # The Evaluator finished meanwhile, and its worker records what it saw.
    assert finish(running, "succeeded", result="run_x") == "cancelled"
    ended = EvaluationJob.objects.get(pk=running.pk)
    assert (ended.status, ended.error, ended.result) == ("cancelled", "", "run_x")

    done = claim(EvaluationJob, make("lmstudio").pk, "t2")
    assert finish(done, "succeeded") == "succeeded"
    client.force_login(
        django_user_model.objects.create_user("ada", password="pw-ada-12345", is_staff=True)
    )
    response = client.post(f"/api/evaluations/jobs/{done.pk}/cancel/")
    assert response.status_code == 409 and "already ended (succeeded)" in response.json()["error"]


def test_a_late_worker_never_overwrites_a_verdict():
    from tuner_site.jobs.lifecycle import finish, heartbeat

    mine = claim(EvaluationJob, make().pk, "t1")
    # A page took it for lost meanwhile (its worker had not reported for a minute).
    EvaluationJob.objects.filter(pk=mine.pk).update(status="failed", error="taken for lost")
    assert heartbeat(mine, done=3) is False  # so the worker stops its Evaluator
    assert finish(mine, "succeeded", result="run_x") is None
    row = EvaluationJob.objects.get(pk=mine.pk)
    assert (row.status, row.error, row.done, row.result) == ("failed", "taken for lost", 0, None)

    # Nor does a worker whose job was put back in the queue and claimed by another.
    again = claim(EvaluationJob, make("lmstudio").pk, "t2")
    EvaluationJob.objects.filter(pk=again.pk).update(task_id="t3")
    assert finish(again, "failed", "old news") is None
    assert EvaluationJob.objects.get(pk=again.pk).status == "running"


def test_the_jobs_page_says_when_no_worker_has_taken_a_job_for_a_while(client, use_workspace):
    job = make()
    from tuner_site.jobs.lifecycle import enqueue

    enqueue(job)
    job.refresh_from_db()
    assert "data-no-worker" not in client.get("/evaluations/jobs/").content.decode()
    DBTaskResult.objects.filter(id=job.task_id).update(
        enqueued_at=timezone.now() - timedelta(minutes=2)
    )
    for url in ("/evaluations/jobs/", f"/evaluations/jobs/{job.pk}/"):
        page = client.get(url).content.decode()
        assert "No worker has taken a job since" in page, url
        assert "<code>.venv/bin/python manage.py db_worker</code>" in page, url


def test_usernames_and_this_machines_folders_reach_staff_only_with_login_off(
    client, django_user_model, use_workspace, settings
):
    ada = django_user_model.objects.create_user("ada", password="pw-ada-12345", is_staff=True)
    output = (
        f"Results saved to {use_workspace}/Evaluator/results/run_x.json\n"
        '  File "/opt/venvs/eval/lib/python3.11/site-packages/requests/api.py", line 3'
    )
    job = make(status="failed", created_by=ada, output=output, error=f"No {use_workspace}/x.")
    for url in (f"/api/evaluations/jobs/{job.pk}/", "/api/evaluations/jobs/"):
        seen = client.get(url).content.decode()
        assert "ada" not in seen and str(use_workspace) not in seen and "/opt/" not in seen, url
    data = client.get(f"/api/evaluations/jobs/{job.pk}/").json()
    assert data["created_by"] is None and data["error"] == "No x."
    assert data["output"] == [
        "Results saved to Evaluator/results/run_x.json",
        '  File "…/api.py", line 3',
    ]
    page = client.get(f"/evaluations/jobs/{job.pk}/").content.decode()
    assert "ada" not in page and str(use_workspace) not in page
    why = client.get("/api/evaluations/new/").json()["evaluator"]["problem"]
    assert why.startswith(f"This workspace ({use_workspace.name}) has no Evaluator/cli.py")
    assert str(use_workspace) not in client.get("/evaluations/new/").content.decode()
    client.force_login(ada)
    assert client.get(f"/api/evaluations/jobs/{job.pk}/").json()["created_by"] == "ada"
    assert str(use_workspace) in client.get(f"/evaluations/jobs/{job.pk}/").content.decode()
    # With login on, everyone who sees the page is a signed-in teammate.
    client.logout()
    settings.TUNER_REQUIRE_LOGIN = True
    client.force_login(django_user_model.objects.create_user("bob", password="pw-bob-12345"))
    assert client.get(f"/api/evaluations/jobs/{job.pk}/").json()["created_by"] == "ada"
