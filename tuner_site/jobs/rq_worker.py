"""RQ's worker for django-tasks-rq (`manage.py rqworker`), which ends lost jobs as `db_worker`
does: those a dead worker on this machine left running, as it starts and as it stops, and the
one its work horse ran when the horse dies under it (SIGKILL, the OOM killer), so the next job
for that server starts at once rather than when a page looks."""

from __future__ import annotations

import logging
from typing import Any

from django.db import connections
from rq.worker import Worker as RQWorker

from .lifecycle import fail_lost_jobs

logger = logging.getLogger("tuner")


class Worker(RQWorker):
    def work(self, *args: Any, **kwargs: Any) -> bool:
        end_lost_jobs(starting_worker=True)
        try:
            return super().work(*args, **kwargs)
        finally:
            end_lost_jobs(patient=True)  # a cold shutdown (a second Ctrl-C) kills the horse

    def handle_work_horse_killed(self, job: Any, retpid: Any, ret_val: Any, rusage: Any) -> None:
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)
        end_lost_jobs(patient=True)


def end_lost_jobs(starting_worker: bool = False, patient: bool = False) -> None:
    """Fail lost jobs; `patient`: a database that is down or locked is logged, not raised, and
    pages fail those jobs later (the worker keeps working)."""
    try:
        for job in fail_lost_jobs(starting_worker=starting_worker):
            logger.warning("Evaluation job %s marked as lost: its worker is gone.", job.pk)
    except Exception:
        if not patient:
            raise
        logger.exception("Could not look for lost jobs; pages will.")
    finally:
        # Each job runs in a work horse forked from this process: it must not share a
        # database connection with it.
        connections.close_all()
