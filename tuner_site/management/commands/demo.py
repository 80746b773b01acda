from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from tuner_site.workspace_builder import build_demo


class Command(BaseCommand):
    help = "Build (or rebuild) the demo workspace, with one run training right now."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--path", type=Path, default=None, help="where to build it")

    def handle(self, *args: Any, path: Path | None, **options: Any) -> None:
        root = path or settings.DATA_DIR / "demo-workspace"
        build_demo(root)
        self.stdout.write(f"Demo workspace ready in {root}")
