"""The fields and queries every kind of job shares; each kind is a concrete model on top."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.db import models

if TYPE_CHECKING:
    from django_tasks.base import Task


class JobQuerySet(models.QuerySet[Any]):
    """Jobs in one lane (an evaluation's: its server) run one at a time, oldest first."""

    def active(self) -> JobQuerySet:
        return self.filter(status__in=Job.ACTIVE)

    def running_on(self, lane: str) -> JobQuerySet:
        return self.filter(**{self.model.lane_field: lane}, status=Job.Status.RUNNING)

    def queued_on(self, lane: str) -> JobQuerySet:
        return self.filter(**{self.model.lane_field: lane}, status=Job.Status.QUEUED).order_by("id")


class Job(models.Model):
    """A job's state, who runs it, and what its child process printed."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    ENDED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)
    # The field naming a job's lane; the kind's table holds one running job per lane.
    lane_field: ClassVar[str]
    # What a job starts again from when it goes back to the queue (besides the shared fields).
    restart_fields: ClassVar[dict[str, Any]] = {}
    # Bytes of the child's command line: a dead worker's orphan is stopped only if it has them.
    child_marker: ClassVar[bytes]

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # Who runs it: a worker that dies leaves these behind, so the next one can tell.
    task_id = models.CharField(max_length=64, blank=True)
    worker_host = models.CharField(max_length=255, blank=True)
    worker_pid = models.IntegerField(null=True, blank=True)
    # The child process, which leads its own process group (the name is the first kind's).
    evaluator_pid = models.IntegerField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)

    output = models.TextField(blank=True, help_text="The last lines the Evaluator printed")
    exit_code = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True, help_text="Why it failed, in one line")

    objects = JobQuerySet.as_manager()

    class Meta:
        abstract = True
        ordering = ["-id"]

    @classmethod
    def task(cls) -> Task[Any, Any]:
        """The task a worker runs for one job of this kind, given the job's id."""
        raise NotImplementedError

    def progress_text(self) -> str:
        """How far it got, in a few words, for the note a stopped job keeps."""
        return ""

    def after_lost(self) -> None:
        """Clean up what the job left outside its child process, once it was taken for lost."""

    @property
    def lane(self) -> str:
        return str(getattr(self, self.lane_field))

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def is_queued(self) -> bool:
        return self.status == self.Status.QUEUED

    @property
    def is_running(self) -> bool:
        return self.status == self.Status.RUNNING

    @property
    def can_run_again(self) -> bool:
        return self.status in (self.Status.FAILED, self.Status.CANCELLED)

    @property
    def output_lines(self) -> list[str]:
        return self.output.splitlines()

    @property
    def took_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()
