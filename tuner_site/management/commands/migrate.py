"""Django's migrate, which also makes the SQLite database file: nothing else creates it."""

from __future__ import annotations

from typing import Any

from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db import connections


class Command(DjangoMigrate):
    def execute(self, *args: Any, **options: Any) -> Any:
        # Before the system checks: a JSONField's check already opens a connection.
        connection = connections[options.get("database") or "default"]
        create_file = getattr(connection, "create_file", None)
        if create_file is not None:
            create_file()
        return super().execute(*args, **options)
