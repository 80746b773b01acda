from __future__ import annotations

from django.apps import AppConfig


class TunerConfig(AppConfig):
    name = "tuner_site"
    verbose_name = "Tuner Dashboard"

    def ready(self) -> None:
        from . import (
            checks,  # noqa: F401  registers them
            workspace,
        )

        workspace.configure()
