from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from discovery.paths import realpath
from discovery.prompt_sets import default_description, list_prompt_sets

from .models import PromptSetNote

admin.site.site_header = "Tuner Dashboard admin"
admin.site.site_title = "Tuner Dashboard"


def _discovered() -> dict[str, Any]:
    root = realpath(settings.TUNER_WORKSPACE)
    return {s.name: s for s in list_prompt_sets(root)} if root.is_dir() else {}


@admin.register(PromptSetNote)
class PromptSetNoteAdmin(admin.ModelAdmin):
    list_display = ("name", "file", "cases", "description", "display_order", "hidden")
    list_editable = ("description", "display_order", "hidden")
    search_fields = ("name", "description")
    list_filter = ("hidden",)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        # Every discovered set gets a row to edit, filled with its default description.
        PromptSetNote.objects.bulk_create(
            [PromptSetNote(name=n, description=default_description(n)) for n in _discovered()],
            ignore_conflicts=True,
        )
        return super().changelist_view(request, extra_context)

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
