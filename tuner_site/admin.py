from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connections, router
from django.http import HttpRequest, HttpResponse
from django.utils.safestring import SafeString

from discovery.prompt_sets import PromptSet, default_description, list_prompt_sets

from . import workspace
from .database import problem
from .models import EvaluationJob, PromptSetNote
from .templatetags.tuner import breakable

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


def _busy_form(form: Any, message: str) -> Any:
    """The same form or formset, invalid with `message`: shown again with what was typed."""

    def clean(self: Any) -> Any:
        form.clean(self)
        raise ValidationError(message)

    return type(form.__name__, (form,), {"clean": clean})


def _same_text(a: str, b: str) -> bool:
    """Equal but for spacing and line endings (a browser sends a text box's lines as CRLF)."""
    return a.split() == b.split()


class PromptSetNoteForm(forms.ModelForm):
    """The description box holds the text the site shows: the default description while none
    is saved. Saved unchanged it stays the default, so nothing is stored and a better default
    in a later version still reaches it."""

    class Meta:
        model = PromptSetNote
        fields = "__all__"
        widgets = {"description": forms.Textarea(attrs={"rows": 3, "cols": 40})}
        help_texts = {
            "description": "Shown on the pages, the JSON and the CLI. Left as the default "
            "text (or empty), the set keeps the default description."
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.name and not self.instance.description:
            self.initial["description"] = default_description(self.instance.name)

    def clean_description(self) -> str:
        text: str = self.cleaned_data.get("description", "")
        name = self.cleaned_data.get("name") or self.instance.name
        return "" if name and _same_text(text, default_description(name)) else text


@admin.register(PromptSetNote)
class PromptSetNoteAdmin(admin.ModelAdmin):
    form = PromptSetNoteForm
    # Narrow columns beside the description, so the list fits a laptop's screen.
    list_display = ("name_link", "cases", "description", "display_order", "hidden")
    list_display_links = ("name_link",)
    list_editable = ("description", "display_order", "hidden")
    search_fields = ("name", "description")
    list_filter = ("hidden",)

    class Media:
        css = {"all": ("css/admin.css",)}

    def get_changelist_form(self, request: Any, **kwargs: Any) -> Any:
        return super().get_changelist_form(request, form=PromptSetNoteForm, **kwargs)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        self._add_discovered(request)
        return self._retrying_when_busy(request, super().changelist_view, extra_context)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: Any = None,
    ) -> HttpResponse:
        view = partial(super().changeform_view, object_id=object_id, form_url=form_url)
        return self._retrying_when_busy(request, view, extra_context)

    def _retrying_when_busy(
        self, request: HttpRequest, view: Callable[..., HttpResponse], extra_context: Any
    ) -> HttpResponse:
        """A save that meets a locked database is shown again, with what was typed and why.

        When even that cannot read the database, the 503 page keeps what was typed instead.
        """
        try:
            return view(request, extra_context=extra_context)
        except DatabaseError as exc:
            found = problem(exc)
            if request.method != "POST" or found is None or not found.busy:
                raise
            request.tuner_busy = (  # type: ignore[attr-defined]
                "The dashboard's database is busy: another program holds a lock on it, so "
                "nothing was saved. What you typed is still here: save again in a moment."
            )
            connection = connections[router.db_for_write(self.model)]
            deferred = getattr(connection, "deferred", None)
            with deferred() if deferred else contextlib.nullcontext():
                return view(request, extra_context=extra_context)

    def get_form(self, request: Any, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        busy = getattr(request, "tuner_busy", None)
        return _busy_form(form, busy) if busy else form

    def get_changelist_formset(self, request: Any, **kwargs: Any) -> Any:
        formset = super().get_changelist_formset(request, **kwargs)
        busy = getattr(request, "tuner_busy", None)
        return _busy_form(formset, busy) if busy else formset

    def _add_discovered(self, request: HttpRequest) -> None:
        # Every discovered set gets a row to edit. A blank description shows the default,
        # which discovery computes; it is never copied into the row.
        known = set(PromptSetNote.objects.values_list("name", flat=True))
        missing = [PromptSetNote(name=n) for n in _discovered(request) if n not in known]
        if not missing:
            return
        try:
            PromptSetNote.objects.bulk_create(missing, ignore_conflicts=True)
        except DatabaseError as exc:
            found = problem(exc)
            if found is None or not found.busy:
                raise
            messages.warning(
                request, "New prompt sets get their rows here once the database is free again."
            )

    @admin.display(description="name", ordering="name")
    def name_link(self, obj: PromptSetNote) -> SafeString:
        return breakable(obj.name)  # wraps after its _ rather than widening the list

    @admin.display(description="cases")
    def cases(self, obj: PromptSetNote) -> str:
        found = _discovered().get(obj.name)
        if found is None:
            return "file missing"
        return f"{found.count:,}" if found.count is not None else f"error: {found.error}"


@admin.register(EvaluationJob)
class EvaluationJobAdmin(admin.ModelAdmin):
    """To look jobs up and delete old ones; they are started and cancelled from the pages."""

    list_display = ("id", "status", "model", "prompt_set", "backend", "created_by", "created_at")
    list_filter = ("status", "backend")
    search_fields = ("model", "prompt_set", "result")
    readonly_fields = [f.name for f in EvaluationJob._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
