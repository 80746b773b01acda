from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse

from discovery.prompt_sets import PromptSet, default_description, list_prompt_sets

from . import workspace
from .models import EvaluationJob, PromptSetNote

admin.site.site_header = "Tuner Dashboard admin"
admin.site.site_title = "Tuner Dashboard"


def _discovered(request: HttpRequest | None = None) -> dict[str, PromptSet]:
    try:
        root = workspace.current().root
    except workspace.WorkspaceMissing as exc:
        if request is not None:
            messages.warning(request, exc.message())
        return {}
    return {s.name: s for s in list_prompt_sets(root)}


@admin.register(PromptSetNote)
class PromptSetNoteAdmin(admin.ModelAdmin):
    list_display = ("name", "file", "cases", "description", "default", "display_order", "hidden")
    list_editable = ("description", "display_order", "hidden")
    search_fields = ("name", "description")
    list_filter = ("hidden",)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        # Every discovered set gets a row to edit. A blank description shows the default,
        # which discovery computes; it is never copied into the row.
        PromptSetNote.objects.bulk_create(
            [PromptSetNote(name=n) for n in _discovered(request)], ignore_conflicts=True
        )
        return super().changelist_view(request, extra_context)

    @admin.display(description="shown when blank")
    def default(self, obj: PromptSetNote) -> str:
        return default_description(obj.name)

    @admin.display(description="file")
    def file(self, obj: PromptSetNote) -> str:
        found = _discovered().get(obj.name)
        return found.filename if found else "missing"

    @admin.display(description="cases")
    def cases(self, obj: PromptSetNote) -> str:
        found = _discovered().get(obj.name)
        if found is None:
            return "—"
        return str(found.count) if found.count is not None else f"error: {found.error}"


@admin.register(EvaluationJob)
class EvaluationJobAdmin(admin.ModelAdmin):
    """To look jobs up and delete old ones; they are started and cancelled from the pages."""

    list_display = ("id", "status", "model", "prompt_set", "backend", "created_by", "created_at")
    list_filter = ("status", "backend")
    search_fields = ("model", "prompt_set", "result")
    readonly_fields = [f.name for f in EvaluationJob._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
