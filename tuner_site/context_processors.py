from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def dashboard(request: HttpRequest) -> dict[str, Any]:
    return {
        "refresh_seconds": settings.TUNER_REFRESH_SECONDS,
        "running_window": settings.TUNER_RUNNING_WINDOW,
    }
