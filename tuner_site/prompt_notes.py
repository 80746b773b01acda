"""Discovered prompt sets joined with what people wrote about them in admin."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from discovery.prompt_sets import PromptSet, default_description, list_prompt_sets, order_key

from .models import PromptSetNote


@dataclass(frozen=True)
class Listed:
    prompt_set: PromptSet
    description: str
    hidden: bool
    display_order: int


def notes() -> dict[str, PromptSetNote]:
    # A database error propagates: defaults in place of edits, or hidden sets shown, would be
    # wrong answers. Pages turn it into a 503 that says why (tuner_site/database.py).
    return {n.name: n for n in PromptSetNote.objects.all()}


def describe(s: PromptSet, note: PromptSetNote | None) -> Listed:
    return Listed(
        prompt_set=s,
        description=(
            note.description if note and note.description else default_description(s.name)
        ),
        hidden=bool(note and note.hidden),
        display_order=note.display_order if note else 0,
    )


def listed(root: Path, include_hidden: bool = False) -> list[Listed]:
    by_name = notes()
    items = [describe(s, by_name.get(s.name)) for s in list_prompt_sets(root)]
    items.sort(key=lambda x: (x.display_order, *order_key(x.prompt_set.name)))
    return [x for x in items if include_hidden or not x.hidden]
