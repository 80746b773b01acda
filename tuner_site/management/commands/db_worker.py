"""django-tasks-db's worker, which first ends the jobs a dead worker left running, puts the job
it runs back in the queue when it is told to stop, and outlives a locked database."""

from __future__ import annotations

import logging
import time
from types import FrameType
from typing import Any

from django.db import OperationalError
from django_tasks_db.management.commands import db_worker as upstream

from tuner_site.jobs.lifecycle import STOPPING, fail_lost_jobs, is_locked

logger = logging.getLogger("django_tasks_db")
BACKOFF_START, BACKOFF_MAX = 0.5, 30.0  # seconds between polls of a locked database
CALM_AFTER = 60.0  # a lock this long after the last one starts the back-off again


class Worker(upstream.Worker):
    def shutdown(self, signum: int, frame: FrameType | None) -> None:
        if STOPPING.is_set():
            return  # a stop under way ends the worker once its job is back in the queue
        if not self.running_task:
            super().shutdown(signum, frame)  # waiting for a task: exit now
            return
        # The running job's own loop sees this within half a second: it stops its child and
        # goes back to the queue. Further signals (Ctrl-C reaches `make run`'s worker twice,
        # from the terminal and from its trap) change nothing; nothing is left half-done.
        if not STOPPING.is_set():
            STOPPING.set()
            self.running = False

    def run(self) -> None:
        delay, last = 0.0, float("-inf")
        while True:
            try:
                super().run()
                return
            except OperationalError as exc:
                if not is_locked(exc) or not self.running:
                    raise
            now = time.monotonic()
            delay = BACKOFF_START if now - last > CALM_AFTER else min(delay * 2, BACKOFF_MAX)
            last = now
            logger.warning(
                "The database is locked (another program is writing to it: a backup, VACUUM or "
                "a large delete?); polling again in %g s.",
                delay,
            )
            self.startup_delay = False
            time.sleep(delay)


class _StoppedTask(logging.Filter):
    """A stopped job's task returns normally once its job is back in the queue: django-tasks
    would log it SUCCESSFUL right under the line saying it was stopped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not STOPPING.is_set()


class Command(upstream.Command):
    help = upstream.Command.help + ", after failing evaluation jobs whose worker died"

    def configure_logging(self, verbosity: int) -> None:
        super().configure_logging(verbosity)
        logging.getLogger(upstream.TASKS_LOGGER).addFilter(_StoppedTask())

    def handle(self, *args: Any, **options: Any) -> None:
        for job in fail_lost_jobs(starting_worker=True):
            self.stdout.write(f"Evaluation job {job.pk} marked as lost: its worker is gone.")
        # The upstream command builds its worker from this module-level name: ours stands in
        # for it while this command runs.
        original = upstream.Worker
        setattr(upstream, "Worker", Worker)  # noqa: B010
        try:
            super().handle(*args, **options)
        finally:
            setattr(upstream, "Worker", original)  # noqa: B010
