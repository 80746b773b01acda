from __future__ import annotations

from django.conf import settings
from django.db import models

from .evaluator_run import DEFAULT_TEMPERATURE, EXIT_CODES


class PromptSetNote(models.Model):
    """What people add to a discovered prompt set: its description, place and visibility."""

    name = models.CharField(max_length=255, unique=True, help_text="The file's name without .json")
    description = models.TextField(blank=True, help_text="Shown on the pages, the JSON and the CLI")
    display_order = models.IntegerField(default=0, help_text="Lower comes first")
    hidden = models.BooleanField(default=False, help_text="Leave out of lists")

    class Meta:
        ordering = ["display_order", "name"]
        verbose_name = "prompt set"

    def __str__(self) -> str:
        return self.name


class EvaluationJobQuerySet(models.QuerySet["EvaluationJob"]):
    def active(self) -> EvaluationJobQuerySet:
        return self.filter(status__in=EvaluationJob.ACTIVE)

    def running_on(self, backend: str) -> EvaluationJobQuerySet:
        return self.filter(backend=backend, status=EvaluationJob.Status.RUNNING)

    def queued_on(self, backend: str) -> EvaluationJobQuerySet:
        return self.filter(backend=backend, status=EvaluationJob.Status.QUEUED).order_by("id")


class EvaluationJob(models.Model):
    """One run of the workspace's Evaluator: a served model × a prompt set, in the background."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    # The server as configured when the job was made: the Evaluator is pointed at this address.
    backend = models.CharField(max_length=100, help_text="The configured server's name")
    backend_kind = models.CharField(max_length=20)
    backend_url = models.CharField(max_length=500)
    model = models.CharField(max_length=500)
    prompt_set = models.CharField(max_length=255)
    tags = models.JSONField(default=list, blank=True)
    limit = models.PositiveIntegerField(null=True, blank=True)
    temperature = models.FloatField(default=DEFAULT_TEMPERATURE)
    seed = models.BigIntegerField(null=True, blank=True)

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
    evaluator_pid = models.IntegerField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)

    # Progress, from the Evaluator's "Running N evaluations" and per-case ✓/✗ lines.
    total = models.PositiveIntegerField(null=True, blank=True)
    done = models.PositiveIntegerField(default=0)
    passed = models.PositiveIntegerField(default=0)
    output = models.TextField(blank=True, help_text="The last lines the Evaluator printed")
    exit_code = models.IntegerField(null=True, blank=True)
    # Evaluator/results/<output_stem>.json and .md; `result` once that file exists.
    output_stem = models.CharField(max_length=100, null=True, blank=True, unique=True)
    result = models.CharField(max_length=100, null=True, blank=True)
    error = models.TextField(blank=True, help_text="Why it failed, in one line")

    objects = EvaluationJobQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            # One evaluation per server at a time, held by the database for every worker.
            models.UniqueConstraint(
                fields=["backend"],
                condition=models.Q(status="running"),
                name="one_running_evaluation_per_server",
            )
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.model} × {self.prompt_set} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def output_lines(self) -> list[str]:
        return self.output.splitlines()

    @property
    def progress(self) -> float | None:
        return self.done / self.total if self.total else None

    @property
    def exit_meaning(self) -> str:
        return "" if self.exit_code is None else EXIT_CODES.get(self.exit_code, "")

    @property
    def took_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()
