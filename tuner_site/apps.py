from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings


class TunerConfig(AppConfig):
    name = "tuner_site"
    verbose_name = "Tuner Dashboard"

    def ready(self) -> None:
        from discovery.hashing import hasher
        from discovery.logindex import indexer

        from . import checks  # noqa: F401  registers them

        # Indexes survive restarts in the dashboard's own data folder, never in the workspace.
        indexer.configure(settings.TUNER_INDEX_DIR)
        hasher.configure(settings.TUNER_HASH_FILE)
