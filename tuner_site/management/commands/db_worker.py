"""django-tasks-db's worker, which first ends the evaluation jobs a dead worker left running."""

from __future__ import annotations

from typing import Any

from django_tasks_db.management.commands.db_worker import Command as DatabaseWorker

from tuner_site.evaluation_jobs import fail_lost_jobs


class Command(DatabaseWorker):
    help = DatabaseWorker.help + ", after failing evaluation jobs whose worker died"

    def handle(self, *args: Any, **options: Any) -> None:
        for job in fail_lost_jobs(starting_worker=True):
            self.stdout.write(f"Evaluation job {job.pk} marked as lost: its worker is gone.")
        super().handle(*args, **options)
