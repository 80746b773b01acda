from __future__ import annotations

from django.db import models


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
