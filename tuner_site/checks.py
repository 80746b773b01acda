"""System checks for settings that need app code to validate (settings.py imports none)."""

from __future__ import annotations

from typing import Any

from django.core.checks import Error, Warning, register


@register
def run_dirs(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    from django.conf import settings

    return [
        Warning(
            f"TUNER_RUN_DIRS names {folder}, which is not a folder: it is left out.",
            id="tuner.W001",
        )
        for folder in settings.TUNER_RUN_DIRS
        if not folder.is_dir()
    ]


@register
def inference_servers(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    from .workspace import backends

    try:
        backends()
    except ValueError as exc:
        return [
            Error(
                f"Inference server settings: {exc}",
                hint="OLLAMA_HOST and LMSTUDIO_HOST take host:port or a URL; "
                "TUNER_OPENAI_BACKENDS takes name=url pairs, comma-separated.",
                id="tuner.E001",
            )
        ]
    return []
