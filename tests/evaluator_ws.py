"""The real upstream Evaluator in a test workspace, cases a fake Ollama scores, real workers.

Workers are `manage.py db_worker` processes on the test database, which the test process
shares with them (SQLite tests use a file for it, see conftest.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from django.db import connection

from .conftest import REPO, upstream_file
from .fake_servers import EVAL_TOOL

MODEL = "nexus-tools-sft:q8"  # one of the fake Ollama's models


def add_evaluator(root: Path) -> None:
    """Copy the upstream Evaluator and the tools/ it imports; never its old results."""
    for part in ("Evaluator", "tools"):
        shutil.copytree(
            upstream_file(part),
            root / part,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("results", "__pycache__", "*.pyc"),
        )


VERDICT = {"R": "right", "W": "wrong"}


def write_cases(root: Path, name: str, verdicts: str) -> Path:
    """A prompt set whose case i is answered right when verdicts[i] is "R", else wrong.

    Every case is tagged `create`; odd-numbered ones also `folder`.
    """
    cases = [
        {
            "id": f"case_{i + 1:02d}",
            "question": f"Create the folder Projects/{i + 1}; answer {VERDICT[v]}.",
            "tags": ["create", "folder"] if i % 2 == 0 else ["create"],
            "expected_tools": [EVAL_TOOL],
        }
        for i, v in enumerate(verdicts)
    ]
    path = root / "Evaluator" / "prompts" / f"{name}.json"
    path.write_text(json.dumps(cases, indent=2))
    return path


def database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return "sqlite://" + quote(str(db["NAME"]))
    user = quote(db["USER"], safe="") + (
        ":" + quote(db["PASSWORD"], safe="") if db["PASSWORD"] else ""
    )
    return f"postgres://{user}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{quote(db['NAME'])}"


class Worker:
    """One `manage.py db_worker` process; its output goes to a log the failures show."""

    def __init__(self, root: Path, data: Path, env: dict[str, str] | None = None) -> None:
        self.root, self.data = root, data
        self.log = data / f"worker-{time.monotonic_ns()}.log"
        self.extra_env = env or {}
        self.proc: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TUNER_", "DATABASE_URL", "OLLAMA", "LMSTUDIO", "DJANGO_"))
        }
        return (
            base
            | {
                "DATABASE_URL": database_url(),
                "TUNER_WORKSPACE": str(self.root),
                "TUNER_DATA_DIR": str(self.data),
                "TUNER_INDEX_DIR": "",
                "SECRET_KEY": "a-worker-in-a-test",
                "OLLAMA_HOST": "",
                "LMSTUDIO_HOST": "",
                "TUNER_EVALUATOR_PYTHON": sys.executable,
            }
            | self.extra_env
        )

    def command(self) -> list[str]:
        worker = ["db_worker", "--no-reload", "--no-startup-delay", "--interval", "0.1"]
        return [sys.executable, "manage.py", *worker]

    def start(self, *args: str) -> Worker:
        self.data.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [*self.command(), *args],
                cwd=REPO,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    def run_batch(self, timeout: float = 60) -> str:
        """Run every task that is ready now, then exit; the worker's output."""
        self.start("--batch")
        assert self.proc is not None
        self.proc.wait(timeout)
        return self.output()

    def kill(self) -> None:
        """Die as a worker does when the machine or the OOM killer takes it: no clean-up."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            # A second signal ends a worker that was running a task.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def wait_for(
    check: Callable[[], object], what: str, timeout: float = 30, logs: Callable[[], str] = str
) -> object:
    """Poll `check` until it returns something true; else fail with `what` and the logs."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{logs()}")
        time.sleep(0.05)
