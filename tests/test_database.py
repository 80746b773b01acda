"""The database DATABASE_URL selects is the one in use, and it stores what admin edits."""

from __future__ import annotations

import os

import pytest
from django.db import connection

from tuner_site.models import PromptSetNote

pytestmark = pytest.mark.django_db


def test_database_url_selects_the_engine():
    url = os.environ.get("DATABASE_URL", "")
    expected = "postgresql" if url.startswith(("postgres://", "postgresql://")) else "sqlite"
    assert connection.vendor == expected


def test_prompt_set_notes_round_trip_and_stay_unique():
    from django.db import IntegrityError, transaction

    PromptSetNote.objects.create(name="tool_prompts", description="Tools ✓", display_order=2)
    assert PromptSetNote.objects.get(name="tool_prompts").description == "Tools ✓"
    with pytest.raises(IntegrityError), transaction.atomic():
        PromptSetNote.objects.create(name="tool_prompts")
