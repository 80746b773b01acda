from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.db import models

from .jobs.evaluator import DEFAULT_TEMPERATURE, EXIT_CODES, MARKER
from .jobs.models import Job

if TYPE_CHECKING:
    from django_tasks.base import Task


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


class EvaluationJob(Job):
    """One run of the workspace's Evaluator: a served model × a prompt set, in the background."""

    lane_field = "backend"  # one evaluation per server at a time
    child_marker = MARKER
    restart_fields: ClassVar[dict[str, Any]] = {
        "total": None,
        "done": 0,
        "passed": 0,
        "output_stem": None,
        "result": None,
        "serving": "",
        "adapter_digest": "",
    }

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

    # Progress, from the Evaluator's "Running N evaluations" and per-case ✓/✗ lines.
    total = models.PositiveIntegerField(null=True, blank=True)
    done = models.PositiveIntegerField(default=0)
    passed = models.PositiveIntegerField(default=0)
    # Evaluator/results/<output_stem>.json and .md; `result` once that file exists.
    output_stem = models.CharField(max_length=100, null=True, blank=True, unique=True)
    result = models.CharField(max_length=100, null=True, blank=True)

    # A sweep's evaluation serves one checkpoint's adapter as `model` first (jobs/sweep.py).
    sweep = models.ForeignKey(
        "Sweep", null=True, blank=True, on_delete=models.CASCADE, related_name="jobs"
    )
    checkpoint = models.CharField(max_length=255, blank=True)
    adapter_path = models.CharField(
        max_length=1000, blank=True, help_text="The adapter's folder, relative to the workspace"
    )
    adapter_digest = models.CharField(
        max_length=80, blank=True, help_text="sha256 of the adapter_model.safetensors served"
    )
    serving = models.CharField(
        max_length=500, blank=True, help_text="serving, served, removed, kept, or not removed: why"
    )

    class Meta(Job.Meta):
        constraints = [
            # One evaluation per server at a time, held by the database for every worker.
            models.UniqueConstraint(
                fields=["backend"],
                condition=models.Q(status=Job.Status.RUNNING),
                name="one_running_evaluation_per_server",
            )
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.model} × {self.prompt_set} ({self.status})"

    @classmethod
    def task(cls) -> Task[Any, Any]:
        from .jobs.evaluation import run_evaluation

        return run_evaluation

    def progress_text(self) -> str:
        return f"{self.done} of {self.total} cases done" if self.total else ""

    def after_lost(self) -> None:
        if self.sweep_id is not None:
            from .jobs.sweep import remove_left

            remove_left(self)

    @property
    def progress(self) -> float | None:
        return self.done / self.total if self.total else None

    @property
    def exit_meaning(self) -> str:
        return "" if self.exit_code is None else EXIT_CODES.get(self.exit_code, "")


class Sweep(models.Model):
    """Checkpoints of one run evaluated on one prompt set, in order, on one server: one
    evaluation job each (`jobs`), each serving its checkpoint's adapter while it runs."""

    trainer = models.CharField(max_length=255)
    run = models.CharField(max_length=255)
    backend = models.CharField(max_length=100, help_text="The configured server's name")
    backend_kind = models.CharField(max_length=20)
    backend_url = models.CharField(max_length=500)
    base = models.CharField(max_length=500, blank=True, help_text="Ollama: the model it builds on")
    prompt_set = models.CharField(max_length=255)
    tags = models.JSONField(default=list, blank=True)
    limit = models.PositiveIntegerField(null=True, blank=True)
    temperature = models.FloatField(default=DEFAULT_TEMPERATURE)
    seed = models.BigIntegerField(null=True, blank=True)
    keep = models.BooleanField(default=False, help_text="Leave each served model on the server")
    warnings = models.JSONField(
        default=list, blank=True, help_text="What looked wrong when it started (the base's family)"
    )
    cancelled = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"sweep #{self.pk} {self.trainer}/{self.run} × {self.prompt_set}"
