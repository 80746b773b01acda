"""System checks for settings that need app code to validate (settings.py imports none)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.checks import Error, Warning, register

# The settings these check are a user's: commands that skip Django's own checks run these.
TAG = "tuner"


@register(TAG)
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


@register(TAG)
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


def static_files_problem() -> str | None:
    """What is wrong when static files are served through a manifest that was never written."""
    from django.conf import settings
    from django.contrib.staticfiles.storage import ManifestFilesMixin, staticfiles_storage

    if not isinstance(staticfiles_storage, ManifestFilesMixin):
        return None
    if (Path(settings.STATIC_ROOT) / staticfiles_storage.manifest_name).is_file():
        return None
    return (
        f"Static files are not collected in {settings.STATIC_ROOT}: with DEBUG=0 every page "
        "needs them. Run `python manage.py collectstatic --noinput` (make serve-lan does)."
    )


@register(TAG)
def static_files(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    # A warning on every command (migrate comes before collectstatic); the server itself
    # refuses to start (tuner_site/wsgi.py).
    problem = static_files_problem()
    return [Warning(problem, id="tuner.W002")] if problem else []
