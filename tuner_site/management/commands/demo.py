from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from sampledata.demo import build_demo, follow_demo


class Command(BaseCommand):
    help = "Build (or rebuild) the demo workspace, with one run training right now."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--path", type=Path, default=None, help="where to build it")
        parser.add_argument(
            "--follow",
            action="store_true",
            help="don't build: keep the demo's running run training until it finishes",
        )
        parser.add_argument("--interval", type=float, default=4.0, help="seconds per log line")

    def handle(
        self, *args: Any, path: Path | None, follow: bool, interval: float, **options: Any
    ) -> None:
        root = path or settings.TUNER_DEMO_WORKSPACE
        if follow:
            with contextlib.suppress(KeyboardInterrupt):
                follow_demo(root, interval)
            return
        build_demo(root)
        self.stdout.write(f"Demo workspace ready in {root}")
