"""A locked, deleted or unmigrated database: never a wrong answer, never a lost edit.

The dashboard's SQLite file is locked for real by another process (an exclusive locking mode
blocks reads too, even in WAL mode; `BEGIN IMMEDIATE` only writes), or deleted while the server
runs.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections

from sampledata import evaluator
from sampledata import runs as wb

from .conftest import age, started

# Transactional: the test's own connection is a real file, not wrapped in a transaction.
pytestmark = pytest.mark.django_db(transaction=True)

RUN = "20251101_100000"
EDITED = "Edited in admin: the tool-calling set"


@pytest.fixture
def file_database(tmp_path: Path, django_db_blocker) -> Iterator[Path]:
    """The default database as a real SQLite file for this test, made by `migrate`.

    The in-memory test database stays open aside and comes back afterwards.
    """
    conn = connections[DEFAULT_DB_ALIAS]
    if conn.vendor != "sqlite":
        pytest.skip("SQLite's own file and locks")
    path = tmp_path / "data" / "tuner.sqlite3"
    path.parent.mkdir(mode=0o700)
    with django_db_blocker.unblock():
        conn.ensure_connection()
        memory, saved = conn.connection, dict(conn.settings_dict)
        conn.connection = None
        # A short busy wait keeps the test fast; the server's is SQLite's default, 5 s.
        conn.settings_dict.update(NAME=path, OPTIONS={**saved["OPTIONS"], "timeout": 0.3})
        try:
            call_command("migrate", verbosity=0)
            yield path
        finally:
            conn.close()
            conn.connection = memory
            conn.settings_dict.clear()
            conn.settings_dict.update(saved)


@pytest.fixture
def edited(file_database: Path, use_workspace: Path, client) -> Path:
    from django.contrib.auth import get_user_model

    from tuner_site.models import PromptSetNote

    wb.make_run(use_workspace, "sft", started(RUN), max_steps=20, save_every=10)
    age(use_workspace / "Trainers", 7200)
    evaluator.write_prompt_sets(use_workspace)
    PromptSetNote.objects.create(name="tool_prompts", description=EDITED)
    PromptSetNote.objects.create(name="behavior_prompts", hidden=True)
    admin = get_user_model().objects.create_superuser("admin", "a@x.lan", "a-long-password-1")
    client.force_login(admin)
    return file_database


class Lock:
    """Another process holding a lock on the database file until released."""

    def __init__(self, path: Path, kind: str) -> None:
        code = textwrap.dedent(
            f"""
            import sqlite3, sys
            db = sqlite3.connect({str(path)!r}, isolation_level=None)
            if {kind!r} == "EXCLUSIVE":
                # The database is in WAL mode, where readers pass a plain EXCLUSIVE lock; this
                # mode (as a tool holding the file may set) keeps everyone else out.
                db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("BEGIN {kind}")
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            print("locked", flush=True)
            sys.stdin.read()
            db.execute("ROLLBACK")
            """
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        if self.proc.poll() is None:
            self.proc.communicate("", timeout=10)


@pytest.fixture
def lock(edited: Path) -> Iterator:
    held: list[Lock] = []

    def take(kind: str) -> Lock:
        # An exclusive locking mode needs the file to itself for a moment.
        connections[DEFAULT_DB_ALIAS].close()
        held.append(Lock(edited, kind))
        return held[-1]

    yield take
    for lk in held:
        lk.release()


DB_PAGES = ("/", "/api/", "/prompt-sets/", "/api/prompt-sets/", "/prompt-sets/tool_prompts/")


def test_a_locked_database_answers_busy_and_never_shows_hidden_sets_or_defaults(client, lock):
    lk = lock("EXCLUSIVE")
    for url in (*DB_PAGES, "/api/prompt-sets/behavior_prompts/", "/admin/"):
        response = client.get(url)
        body = response.content.decode()
        assert response.status_code == 503, (url, response.status_code)
        assert "busy" in body and response["Retry-After"] == "5", url
        assert "behavior_prompts" not in body and "Tool-calling prompts" not in body, url
    # Pages that do not read the database still answer.
    assert client.get("/runs/").status_code == 200
    assert client.get("/api/runs/").status_code == 200
    lk.release()
    listing = client.get("/prompt-sets/").content.decode()
    assert EDITED in listing and "behavior_prompts" not in listing


def _admin_form(html: str) -> dict[str, str]:
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))
    return {k: unescape(v) for k, v in fields.items()}


def test_an_admin_save_during_a_write_lock_shows_the_form_again_with_what_was_typed(client, lock):
    from tuner_site.models import PromptSetNote

    note = PromptSetNote.objects.get(name="tool_prompts")
    url = f"/admin/tuner_site/promptsetnote/{note.pk}/change/"
    typed = "Typed during a lock: keep me"
    form = {"name": "tool_prompts", "description": typed, "display_order": "3", "_save": "1"}
    lk = lock("IMMEDIATE")  # reads work, writes wait and fail
    response = client.post(url, form)
    html = response.content.decode()
    assert response.status_code == 200
    assert "busy" in html and typed in html and 'value="3"' in html
    lk.release()
    assert PromptSetNote.objects.get(name="tool_prompts").description == EDITED
    assert client.post(url, form).status_code == 302  # sent again: saved
    assert PromptSetNote.objects.get(name="tool_prompts").description == typed


def test_an_admin_list_edit_during_a_write_lock_shows_the_list_again_with_what_was_typed(
    client, lock
):
    from tuner_site.models import PromptSetNote

    url = "/admin/tuner_site/promptsetnote/"
    notes = list(PromptSetNote.objects.order_by("display_order", "name"))
    form = {
        "form-TOTAL_FORMS": str(len(notes)),
        "form-INITIAL_FORMS": str(len(notes)),
        "form-MIN_NUM_FORMS": "0",
        "form-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    for i, n in enumerate(notes):
        form |= {f"form-{i}-id": str(n.pk), f"form-{i}-display_order": str(i)}
        form[f"form-{i}-description"] = f"list edit {i} during a lock"
        if n.hidden:
            form[f"form-{i}-hidden"] = "on"
    lk = lock("IMMEDIATE")
    response = client.post(url, form)
    html = response.content.decode()
    assert response.status_code == 200
    assert "busy" in html and "list edit 0 during a lock" in html
    lk.release()
    assert PromptSetNote.objects.get(name="tool_prompts").description == EDITED
    assert client.post(url, form).status_code == 302
    assert {n.description for n in PromptSetNote.objects.all()} == {
        f"list edit {i} during a lock" for i in range(len(notes))
    }


def test_an_admin_save_while_even_reads_are_locked_keeps_what_was_typed_to_send_again(client, lock):
    from tuner_site.models import PromptSetNote

    note = PromptSetNote.objects.get(name="tool_prompts")
    url = f"/admin/tuner_site/promptsetnote/{note.pk}/change/"
    typed = 'Typed while locked <b>&"quoted"'
    lk = lock("EXCLUSIVE")
    form = {"name": "tool_prompts", "description": typed, "display_order": "0", "_save": "1"}
    response = client.post(url, form)
    assert response.status_code == 503 and response["Retry-After"] == "5"
    fields = _admin_form(response.content.decode())
    assert fields["description"] == typed and fields["_save"] == "1"
    lk.release()
    assert PromptSetNote.objects.get(name="tool_prompts").description == EDITED
    again = {k: v for k, v in fields.items() if k != "csrfmiddlewaretoken"}
    assert client.post(url, again).status_code == 302
    assert PromptSetNote.objects.get(name="tool_prompts").description == typed


def test_a_sign_in_during_a_lock_never_shows_the_password_again(client, lock):
    lk = lock("EXCLUSIVE")
    secret = "hunter2-not-to-be-echoed"
    response = client.post("/accounts/login/", {"username": "ada", "password": secret})
    lk.release()
    assert response.status_code == 503
    page = response.content.decode()
    assert secret not in page and "ada" not in page  # nothing of a secret form is kept
    assert "Try again" in page


def test_a_database_deleted_while_running_is_an_error_page_not_a_new_empty_one(client, edited):
    for side in ("", "-journal", "-wal", "-shm"):
        edited.with_name(edited.name + side).unlink(missing_ok=True)
    # A server opens a connection per request; the test client keeps its one open.
    connections[DEFAULT_DB_ALIAS].close()
    for url in (*DB_PAGES, "/admin/", "/admin/tuner_site/promptsetnote/"):
        response = client.get(url)
        body = response.content.decode()
        assert response.status_code == 503, (url, response.status_code)
        assert "missing" in body and "manage.py migrate" in body, url
        assert f"database {edited.name} is missing" in body and str(edited.parent) not in body
        assert "behavior_prompts" not in body, url
    assert not edited.exists()  # not made again, empty, behind anyone's back
    assert client.get("/runs/").status_code == 200
    call_command("migrate", verbosity=0)
    assert edited.exists() and client.get("/prompt-sets/").status_code == 200


def test_an_unmigrated_database_says_to_migrate(client, file_database, use_workspace):
    evaluator.write_prompt_sets(use_workspace)
    connections[DEFAULT_DB_ALIAS].close()
    file_database.unlink()
    file_database.touch(mode=0o600)  # an empty SQLite database: no tables
    for url in ("/prompt-sets/", "/api/prompt-sets/"):
        response = client.get(url)
        assert (
            response.status_code == 503 and "run `manage.py migrate`" in response.content.decode()
        )
    assert "Tool-calling prompts" not in client.get("/prompt-sets/").content.decode()
